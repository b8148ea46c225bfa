//! What the macro emits when the table is wrong: the errors, and an empty
//! `VARIANTS` so that code using the registry does not add a cascade of
//! "cannot find `VARIANTS`" errors on top.

use proc_macro2::TokenStream;
use quote::quote;

/// `compile_error!`s for `err`, plus a stub registry.
pub fn expand(err: syn::Error) -> TokenStream {
    let errors = err.to_compile_error();
    quote! {
        #errors
        /// Empty: the network table did not compile.
        pub const VARIANTS: &[::lcnet_zoo::lcnet_core::VariantInfo] = &[];
    }
}
