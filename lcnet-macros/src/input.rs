//! Stage 1: the macro's own arguments.
//!
//! `network!("configs/pp_lcnet.toml")` names a file relative to the calling
//! crate's `CARGO_MANIFEST_DIR`; `network!(toml = r#"..."#)` gives the table
//! inline (handy for tests). Either way the literal is kept so that errors can
//! point at it.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

/// Where the TOML table comes from.
pub enum Source {
    /// A path relative to the calling crate's manifest directory.
    File(LitStr),
    /// The table itself.
    Inline(LitStr),
}

/// The parsed macro input.
pub struct MacroInput {
    /// Where the table comes from.
    pub source: Source,
}

impl MacroInput {
    /// The literal to point errors at.
    pub fn literal(&self) -> &LitStr {
        match &self.source {
            Source::File(lit) | Source::Inline(lit) => lit,
        }
    }
}

impl Parse for MacroInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let source = if input.peek(LitStr) {
            Source::File(input.parse()?)
        } else {
            let key: Ident = input.parse()?;
            if key != "toml" {
                return Err(syn::Error::new(
                    key.span(),
                    "expected a config path (`network!(\"configs/net.toml\")`) or `toml = r#\"...\"#`",
                ));
            }
            input.parse::<Token![=]>()?;
            Source::Inline(input.parse()?)
        };
        // A trailing comma is fine; anything else is not.
        let _ = input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the config"));
        }
        Ok(MacroInput { source })
    }
}
