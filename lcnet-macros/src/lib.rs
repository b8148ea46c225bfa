//! # lcnet-macros
//!
//! `network!` turns a PP-LCNet layer table written in TOML into Rust: one
//! module per width, each with a shape-checked straight-line forward pass
//! calling `lcnet-core`. Use it through `lcnet_zoo::network!`, which makes the
//! generated paths resolve.
//!
//! The stages, each a plain function (unit-tested without rustc):
//! `input` (macro arguments) -> `config` (TOML with spans) ->
//! `validate` (every error collected) -> `plan` (channels, sizes, params,
//! MACs per width) -> `expand` (tokens); `fallback` on error. `arith` holds
//! PaddleClas's sizing arithmetic that validation and planning share.

use proc_macro::TokenStream;
use std::path::PathBuf;

mod arith;
mod config;
mod expand;
mod fallback;
mod input;
mod plan;
mod validate;

use input::{MacroInput, Source};

/// Generates the network variants described by a TOML layer table.
///
/// ```ignore
/// lcnet_zoo::network!("configs/pp_lcnet.toml"); // relative to CARGO_MANIFEST_DIR
/// lcnet_zoo::network!(toml = r#" ... "#);        // inline table
/// ```
///
/// Each width `w` of the table becomes `pub mod x<w>` (e.g. `x1_0`) behind
/// `#[cfg(feature = "x1_0")]` in the calling crate, and `VARIANTS` lists the
/// compiled ones. A wrong table is a compile error naming the file, line,
/// column and problem.
#[proc_macro]
pub fn network(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as MacroInput);
    generate(&input).unwrap_or_else(fallback::expand).into()
}

fn generate(input: &MacroInput) -> syn::Result<proc_macro2::TokenStream> {
    let lit = input.literal();
    let (label, source, tracked) = match &input.source {
        Source::Inline(text) => ("<inline toml>".to_string(), text.value(), None),
        Source::File(rel) => {
            let path = resolve(&rel.value());
            let source = std::fs::read_to_string(&path).map_err(|e| {
                syn::Error::new(lit.span(), format!("cannot read network config {}: {e}", path.display()))
            })?;
            (rel.value(), source, Some(path.display().to_string()))
        }
    };
    if std::env::var_os("LCNET_MACROS_DEBUG").is_some() {
        eprintln!("lcnet-macros: expanding {label}");
    }
    let raw = config::parse(&source).map_err(|e| syn::Error::new(lit.span(), e.render(&label, &source)))?;
    let net = validate::check(&raw).map_err(|errors| {
        errors
            .iter()
            .map(|e| syn::Error::new(lit.span(), e.render(&label, &source)))
            .reduce(|mut all, e| {
                all.combine(e);
                all
            })
            .expect("check returns at least one error")
    })?;
    let tokens = expand::network(&net, tracked.as_deref());
    if std::env::var_os("LCNET_MACROS_DEBUG").is_some() {
        eprintln!("{tokens}");
    }
    Ok(tokens)
}

/// Resolves a config path against the calling crate's manifest directory.
fn resolve(rel: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
    root.join(rel)
}
