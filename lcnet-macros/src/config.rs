//! Stage 2: the TOML table, deserialised with every user value spanned.
//!
//! These `Raw*` types mirror the file one to one (unknown keys are errors);
//! [`crate::validate`] turns them into the checked [`crate::validate::Net`].
//! Block rows `[kernel, in, out, stride, se]` are kept as spanned TOML values
//! so that each element gets its own precise error.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

/// The whole table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub network: Spanned<RawNetwork>,
    pub stem: Spanned<RawStem>,
    pub se: Option<Spanned<RawSe>>,
    #[serde(rename = "stage")]
    pub stages: Spanned<Vec<Spanned<RawStage>>>,
    pub head: Spanned<RawHead>,
}

/// `[network]`: what the whole network is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub name: Spanned<String>,
    pub input: Spanned<Vec<Spanned<i64>>>,
    pub classes: Spanned<i64>,
    pub widths: Spanned<Vec<Spanned<f64>>>,
    pub divisor: Spanned<i64>,
    pub activation: Option<Spanned<String>>,
    /// Prepended to each width's cargo feature and module (`textline_` ->
    /// `textline_x1_0`), so two tables can share one crate.
    pub feature_prefix: Option<Spanned<String>>,
}

/// `[stem]`: the first, dense conv.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStem {
    pub kernel: Spanned<i64>,
    pub stride: Spanned<toml::Value>,
    pub channels: Spanned<i64>,
}

/// `[se]`: the squeeze-and-excitation setting shared by every SE block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSe {
    pub reduction: Spanned<i64>,
}

/// One `[[stage]]`: a named group of depthwise-separable blocks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub name: Spanned<String>,
    pub blocks: Spanned<Vec<Spanned<Vec<Spanned<toml::Value>>>>>,
}

/// `[head]`: GAP -> 1x1 conv -> activation -> dropout -> FC.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    /// `false` = PaddleClas `use_last_conv=False`: GAP straight into the FC.
    pub conv: Option<Spanned<bool>>,
    /// Whether the head conv has a bias (PaddleClas: no; timm: yes).
    pub bias: Option<Spanned<bool>>,
    pub channels: Spanned<i64>,
    pub dropout: Spanned<f64>,
    pub dropout_mode: Spanned<String>,
}

/// A problem in the table, with the byte range of the offending source.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl ConfigError {
    pub fn at<T>(value: &Spanned<T>, message: impl Into<String>) -> Self {
        ConfigError { span: Some(value.span()), message: message.into() }
    }

    /// Renders `path:line:col: message` plus the offending source line, like
    /// rustc's own `-->` lines.
    pub fn render(&self, path: &str, source: &str) -> String {
        let Some(span) = &self.span else {
            return format!("{path}: {}", self.message);
        };
        let start = span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let line_no = source[..start].matches('\n').count() + 1;
        let col = source[line_start..start].chars().count() + 1;
        let text = &source[line_start..line_end];
        let gutter = " ".repeat(line_no.to_string().len());
        let marker_len = source[start..span.end.min(line_end).max(start)].chars().count().max(1);
        format!(
            "{path}:{line_no}:{col}: {msg}\n{gutter} |\n{line_no} | {text}\n{gutter} | {pad}{marks}",
            msg = self.message,
            pad = " ".repeat(col - 1),
            marks = "^".repeat(marker_len),
        )
    }
}

/// Parses the TOML text; syntax errors, wrong types and unknown keys come
/// back with their location.
pub fn parse(source: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(source).map_err(|e: toml::de::Error| ConfigError {
        span: e.span(),
        message: e.message().trim_end().replace('\n', " "),
    })
}
