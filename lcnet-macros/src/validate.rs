//! Stage 3: cross-checks on the whole table, collecting every error.
//!
//! The result, [`Net`], holds plain checked values: expansion never has to
//! re-validate anything.

use toml::Spanned;

use crate::arith::make_divisible;
use crate::config::{ConfigError, RawConfig, RawHead, RawNetwork, RawStage};

/// Activation used after every conv (PP-LCNet: HardSwish).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    HardSwish,
    Relu,
    Relu6,
}

/// A checked depthwise-separable block, channels at width 1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kernel: usize,
    pub in_c: usize,
    pub out_c: usize,
    pub stride: [usize; 2],
    pub se: bool,
}

/// A checked stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub blocks: Vec<Block>,
}

/// The checked network table.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    pub name: String,
    /// Prefix of every width's cargo feature and module name (may be empty).
    pub feature_prefix: String,
    pub input: [usize; 3],
    pub classes: usize,
    pub widths: Vec<f64>,
    pub divisor: usize,
    pub act: Act,
    pub stem_kernel: usize,
    pub stem_stride: [usize; 2],
    pub stem_channels: usize,
    pub se_reduction: usize,
    pub stages: Vec<Stage>,
    pub head_channels: usize,
    /// Whether the head has its 1x1 conv (PaddleClas `use_last_conv`).
    pub head_conv: bool,
    /// Whether that conv has a bias.
    pub head_bias: bool,
    /// The factor dropout applies at inference (0.8 for Paddle's
    /// `downscale_in_infer` with p = 0.2; 1.0 for `upscale_in_train`).
    pub dropout_scale: f64,
}

/// Collects errors instead of stopping at the first (serde's `Ctxt`).
#[derive(Default)]
struct Ctxt {
    errors: Vec<ConfigError>,
}

impl Ctxt {
    fn error<T>(&mut self, at: &Spanned<T>, msg: impl Into<String>) {
        self.errors.push(ConfigError::at(at, msg));
    }

    /// A count that must be at least `min`.
    fn count(&mut self, v: &Spanned<i64>, what: &str, min: i64) -> usize {
        if *v.get_ref() < min {
            self.error(v, format!("{what} must be at least {min}, found {}", v.get_ref()));
            return min.max(1) as usize;
        }
        *v.get_ref() as usize
    }

    fn kernel(&mut self, v: &Spanned<i64>, what: &str) -> usize {
        let k = *v.get_ref();
        if k < 1 || k % 2 == 0 {
            self.error(v, format!("{what} must be odd and positive (3 or 5 in PP-LCNet), found {k}"));
            return 3;
        }
        k as usize
    }

    /// A stride: `1`, `2` or a per-axis pair `[sh, sw]` of those.
    fn stride(&mut self, v: &Spanned<toml::Value>, what: &str) -> [usize; 2] {
        let one = |x: &toml::Value| x.as_integer().filter(|s| *s == 1 || *s == 2).map(|s| s as usize);
        match v.get_ref() {
            toml::Value::Array(pair) if pair.len() == 2 => match (one(&pair[0]), one(&pair[1])) {
                (Some(h), Some(w)) => return [h, w],
                _ => self.error(v, format!("{what} components must each be 1 or 2, found {}", v.get_ref())),
            },
            other => match one(other) {
                Some(s) => return [s, s],
                None => self.error(v, format!("{what} must be 1, 2 or a pair [sh, sw] of those, found {other}")),
            },
        }
        [1, 1]
    }
}

/// Checks the table; returns every problem found.
pub fn check(raw: &RawConfig) -> Result<Net, Vec<ConfigError>> {
    let mut cx = Ctxt::default();
    let top = network_section(&mut cx, raw.network.get_ref());
    let stem = raw.stem.get_ref();
    let stem_kernel = cx.kernel(&stem.kernel, "stem kernel");
    let stem_stride = cx.stride(&stem.stride, "stem stride");
    let stem_channels = cx.count(&stem.channels, "stem channels", 1);
    let se_reduction = match &raw.se {
        Some(se) => cx.count(&se.get_ref().reduction, "SE reduction", 1),
        None => 4,
    };
    let stages = stages(&mut cx, &raw.stages, stem_channels);
    se_divides_channels(&mut cx, raw.stages.get_ref(), &top, se_reduction);
    let head = head_section(&mut cx, raw.head.get_ref());

    let net = Net {
        name: top.name,
        feature_prefix: top.feature_prefix,
        input: top.input,
        classes: top.classes,
        widths: top.widths,
        divisor: top.divisor,
        act: top.act,
        stem_kernel,
        stem_stride,
        stem_channels,
        se_reduction,
        stages,
        head_channels: head.channels,
        head_conv: head.conv,
        head_bias: head.bias,
        dropout_scale: head.dropout_scale,
    };
    if cx.errors.is_empty() {
        Ok(net)
    } else {
        Err(cx.errors)
    }
}

/// The checked `[network]` section.
struct NetworkSection {
    name: String,
    feature_prefix: String,
    input: [usize; 3],
    classes: usize,
    widths: Vec<f64>,
    divisor: usize,
    act: Act,
}

fn network_section(cx: &mut Ctxt, net: &RawNetwork) -> NetworkSection {
    let input = match net.input.get_ref().as_slice() {
        [c, h, w] => {
            if *c.get_ref() != 3 {
                cx.error(c, format!("input channels must be 3 (RGB), found {}", c.get_ref()));
            }
            [3, cx.count(h, "input height", 1), cx.count(w, "input width", 1)]
        }
        _ => {
            cx.error(&net.input, "input must be [channels, height, width], e.g. [3, 224, 224]");
            [3, 224, 224]
        }
    };
    let classes = cx.count(&net.classes, "classes", 1);
    let feature_prefix = net.feature_prefix.as_ref().map_or(String::new(), |p| {
        let text = p.get_ref().clone();
        if !is_ident(&format!("{text}x1")) {
            cx.error(p, format!("feature_prefix `{text}` must be letters, digits and _ (it starts a module name)"));
        }
        text
    });
    let divisor = cx.count(&net.divisor, "divisor", 1);
    let mut widths = Vec::new();
    for w in net.widths.get_ref() {
        let v = *w.get_ref();
        if !(v > 0.0 && v.is_finite()) {
            cx.error(w, format!("a width must be a positive number, found {v}"));
        } else if widths.contains(&v) {
            cx.error(w, format!("width {v} is listed twice"));
        } else {
            widths.push(v);
        }
    }
    if net.widths.get_ref().is_empty() {
        cx.error(&net.widths, "widths must list at least one width multiplier");
    }
    let act = match net.activation.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "hardswish")) => Act::HardSwish,
        Some((_, "relu")) => Act::Relu,
        Some((_, "relu6")) => Act::Relu6,
        Some((a, other)) => {
            cx.error(a, format!("unknown activation `{other}`; expected `hardswish`, `relu` or `relu6`"));
            Act::HardSwish
        }
    };
    NetworkSection { name: net.name.get_ref().clone(), feature_prefix, input, classes, widths, divisor, act }
}

/// Every `[[stage]]`, with the channel chain checked from the stem's
/// `stem_channels` through every block row.
fn stages(cx: &mut Ctxt, raw: &Spanned<Vec<Spanned<RawStage>>>, stem_channels: usize) -> Vec<Stage> {
    let mut stages = Vec::new();
    // (stage label, channels) of whatever came last, for the chain check.
    let mut prev = ("the stem".to_string(), Some(stem_channels));
    if raw.get_ref().is_empty() {
        cx.error(raw, "the table needs at least one [[stage]]");
    }
    for stage in raw.get_ref() {
        let stage = stage.get_ref();
        let name = stage.name.get_ref().clone();
        if !is_ident(&name) {
            cx.error(&stage.name, format!("stage name `{name}` must be a Rust identifier (letters, digits, _)"));
        }
        if stages.iter().any(|s: &Stage| s.name == name) {
            cx.error(&stage.name, format!("stage name `{name}` is used twice"));
        }
        if stage.blocks.get_ref().is_empty() {
            cx.error(&stage.blocks, format!("stage {name} has no blocks"));
        }
        let mut blocks = Vec::new();
        for (i, row) in stage.blocks.get_ref().iter().enumerate() {
            let label = format!("{name}[{i}]");
            let Some(block) = block_row(cx, row, &label) else {
                // The row's channels are unknown: do not compare the next row with them.
                prev.1 = None;
                continue;
            };
            if let Some(prev_c) = prev.1.filter(|&c| c != block.in_c) {
                let msg = format!("{label} takes {} input channels but {} ends with {prev_c}", block.in_c, prev.0);
                cx.error(row, msg);
            }
            prev = (label, Some(block.out_c));
            blocks.push(block);
        }
        stages.push(Stage { name, blocks });
    }
    stages
}

/// SE's bottleneck is C / reduction of the channels it sees at each width:
/// the reduction must divide them at every width.
fn se_divides_channels(cx: &mut Ctxt, stages: &[Spanned<RawStage>], top: &NetworkSection, se_reduction: usize) {
    for stage in stages {
        let stage = stage.get_ref();
        for (i, row) in stage.blocks.get_ref().iter().enumerate() {
            let (Some(in_c), Some(true)) = (
                row.get_ref().get(1).and_then(|v| v.get_ref().as_integer()),
                row.get_ref().get(4).and_then(|v| v.get_ref().as_bool()),
            ) else {
                continue;
            };
            for &w in &top.widths {
                let c = make_divisible(in_c.max(1) as f64 * w, top.divisor);
                if !c.is_multiple_of(se_reduction) {
                    let label = format!("{}[{i}]", stage.name.get_ref());
                    cx.error(
                        row,
                        format!("{label}: SE reduction {se_reduction} does not divide its {c} channels at width {w}"),
                    );
                }
            }
        }
    }
}

/// The checked `[head]` section.
struct HeadSection {
    channels: usize,
    conv: bool,
    bias: bool,
    dropout_scale: f64,
}

fn head_section(cx: &mut Ctxt, head: &RawHead) -> HeadSection {
    let channels = cx.count(&head.channels, "head channels", 1);
    let conv = head.conv.as_ref().is_none_or(|c| *c.get_ref());
    let bias = head.bias.as_ref().is_some_and(|b| *b.get_ref());
    if let (false, Some(bias)) = (conv, head.bias.as_ref().filter(|b| *b.get_ref())) {
        cx.error(bias, "the head has no conv (conv = false), so it cannot have a conv bias");
    }
    let p = *head.dropout.get_ref();
    if !(0.0..1.0).contains(&p) {
        cx.error(&head.dropout, format!("dropout must be in [0, 1), found {p}"));
    }
    let dropout_scale = match head.dropout_mode.get_ref().as_str() {
        // PaddleClas applies dropout only after the head conv.
        _ if !conv => 1.0,
        "downscale_in_infer" => 1.0 - p,
        "upscale_in_train" => 1.0,
        other => {
            cx.error(
                &head.dropout_mode,
                format!("unknown dropout_mode `{other}`; expected `downscale_in_infer` (Paddle) or `upscale_in_train` (PyTorch)"),
            );
            1.0
        }
    };
    HeadSection { channels, conv, bias, dropout_scale }
}

/// One `[kernel, in, out, stride, se]` row.
fn block_row(cx: &mut Ctxt, row: &Spanned<Vec<Spanned<toml::Value>>>, label: &str) -> Option<Block> {
    let [kernel, in_c, out_c, stride, se] = row.get_ref().as_slice() else {
        cx.error(row, format!("{label} must be [kernel, in, out, stride, se], found {} values", row.get_ref().len()));
        return None;
    };
    let int = |cx: &mut Ctxt, v: &Spanned<toml::Value>, what: &str| -> Option<i64> {
        let i = v.get_ref().as_integer();
        if i.is_none() {
            cx.error(v, format!("{label} {what} must be an integer, found {}", v.get_ref()));
        }
        i
    };
    let k = int(cx, kernel, "kernel");
    let (i, o) = (int(cx, in_c, "input channels"), int(cx, out_c, "output channels"));
    let kernel = k.map(|k| cx.kernel(&Spanned::clone(kernel).map_to(k), &format!("{label} kernel")));
    let in_c = i.map(|i| cx.count(&Spanned::clone(in_c).map_to(i), &format!("{label} input channels"), 1));
    let out_c = o.map(|o| cx.count(&Spanned::clone(out_c).map_to(o), &format!("{label} output channels"), 1));
    let stride = cx.stride(stride, &format!("{label} stride"));
    let se_flag = se.get_ref().as_bool();
    if se_flag.is_none() {
        cx.error(se, format!("{label} se must be true or false, found {}", se.get_ref()));
    }
    Some(Block { kernel: kernel?, in_c: in_c?, out_c: out_c?, stride, se: se_flag? })
}

/// Helper: a spanned value with the same span and a new value.
trait MapTo {
    fn map_to<U>(self, value: U) -> Spanned<U>;
}

impl<T> MapTo for Spanned<T> {
    fn map_to<U>(self, value: U) -> Spanned<U> {
        Spanned::new(self.span(), value)
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    /// A valid two-stage table; tests break one thing at a time.
    pub const GOOD: &str = r#"[network]
name = "tiny"
input = [3, 32, 32]
classes = 10
widths = [0.5, 1.0]
divisor = 8

[stem]
kernel = 3
stride = 2
channels = 16

[[stage]]
name = "blocks2"
blocks = [
    [3, 16, 32, 1, false],
]

[[stage]]
name = "blocks3"
blocks = [
    [5, 32, 64, [2, 1], true],
]

[head]
channels = 128
dropout = 0.2
dropout_mode = "downscale_in_infer"
"#;

    /// Rendered errors of `src` (the parse error, or every validation error).
    pub fn errors(src: &str) -> Vec<String> {
        match parse(src) {
            Err(e) => vec![e.render("net.toml", src)],
            Ok(raw) => match super::check(&raw) {
                Ok(_) => vec![],
                Err(errs) => errs.iter().map(|e| e.render("net.toml", src)).collect(),
            },
        }
    }

    fn one_error(src: &str) -> String {
        let errs = errors(src);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn good_table_validates() {
        let net = super::check(&parse(GOOD).unwrap()).unwrap();
        assert_eq!(net.stages[1].blocks[0].stride, [2, 1]);
        assert!(net.stages[1].blocks[0].se);
        assert!((net.dropout_scale - 0.8).abs() < 1e-12);
        assert_eq!(net.se_reduction, 4);
    }

    #[test]
    fn channel_chain_break_names_both_ends_and_the_line() {
        let err = one_error(&GOOD.replace("[5, 32, 64", "[5, 48, 64"));
        assert!(
            err.starts_with("net.toml:22:5: blocks3[0] takes 48 input channels but blocks2[0] ends with 32"),
            "{err}"
        );
        assert!(err.contains("22 |     [5, 48, 64, [2, 1], true],"), "{err}");
    }

    #[test]
    fn stem_to_first_block_chain_is_checked() {
        let err = one_error(&GOOD.replace("channels = 16", "channels = 24"));
        assert!(err.contains("blocks2[0] takes 16 input channels but the stem ends with 24"), "{err}");
    }

    #[test]
    fn bad_strides_are_errors_at_the_value() {
        let err = one_error(&GOOD.replace("[3, 16, 32, 1, false]", "[3, 16, 32, 3, false]"));
        assert!(
            err.starts_with("net.toml:16:17: blocks2[0] stride must be 1, 2 or a pair [sh, sw] of those, found 3"),
            "{err}"
        );
        let err = one_error(&GOOD.replace("[2, 1]", "[2, 4]"));
        assert!(err.contains("blocks3[0] stride components must each be 1 or 2"), "{err}");
        let err = one_error(&GOOD.replace("stride = 2", "stride = 0"));
        assert!(err.starts_with("net.toml:10:10: stem stride must be"), "{err}");
    }

    #[test]
    fn even_or_zero_kernels_are_errors() {
        let err = one_error(&GOOD.replace("[3, 16, 32", "[4, 16, 32"));
        assert!(err.starts_with("net.toml:16:6: blocks2[0] kernel must be odd and positive"), "{err}");
        let err = one_error(&GOOD.replace("kernel = 3", "kernel = 0"));
        assert!(err.contains("stem kernel must be odd and positive (3 or 5 in PP-LCNet), found 0"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_at_the_key() {
        let err = one_error(&GOOD.replace("divisor = 8", "divisor = 8\ndivisr = 8"));
        assert!(err.starts_with("net.toml:7:1: unknown field `divisr`"), "{err}");
        let err = one_error(&GOOD.replace("[stem]", "[stem]\nbias = true"));
        assert!(err.contains("unknown field `bias`"), "{err}");
    }

    #[test]
    fn several_errors_are_reported_together() {
        let src = GOOD.replace("[3, 16, 32, 1, false]", "[4, 16, 32, 3, false]").replace("classes = 10", "classes = 0");
        let errs = errors(&src);
        assert_eq!(errs.len(), 3, "{errs:#?}");
    }

    #[test]
    fn other_checks() {
        assert!(one_error(&GOOD.replace("widths = [0.5, 1.0]", "widths = [0.5, 0.5]"))
            .contains("width 0.5 is listed twice"));
        assert!(one_error(&GOOD.replace("widths = [0.5, 1.0]", "widths = [-1.0]"))
            .contains("a width must be a positive number"));
        assert!(
            one_error(&GOOD.replace("dropout = 0.2", "dropout = 1.0")).contains("dropout must be in [0, 1), found 1")
        );
        assert!(one_error(&GOOD.replace("\"downscale_in_infer\"", "\"sometimes\""))
            .contains("unknown dropout_mode `sometimes`"));
        assert!(one_error(&GOOD.replace("[3, 16, 32, 1, false]", "[3, 16, 32, 1]"))
            .contains("must be [kernel, in, out, stride, se], found 4 values"));
        assert!(one_error(&GOOD.replace("1, false]", "1, \"no\"]")).contains("blocks2[0] se must be true or false"));
        assert!(one_error(&GOOD.replace("classes = 10", "classes = \"ten\"")).contains("invalid type"));
        assert!(one_error(&GOOD.replace("name = \"blocks3\"", "name = \"blocks2\""))
            .contains("stage name `blocks2` is used twice"));
    }

    #[test]
    fn feature_prefix_must_start_a_module_name() {
        let prefixed = GOOD.replace("divisor = 8", "divisor = 8\nfeature_prefix = \"textline_\"");
        assert_eq!(super::check(&parse(&prefixed).unwrap()).unwrap().feature_prefix, "textline_");
        let bad = GOOD.replace("divisor = 8", "divisor = 8\nfeature_prefix = \"text-line\"");
        assert!(one_error(&bad).contains("feature_prefix `text-line` must be letters, digits and _"));
    }

    #[test]
    fn activation_names_and_se_divisibility() {
        let relu6 = GOOD.replace("divisor = 8", "divisor = 8\nactivation = \"relu6\"");
        assert_eq!(super::check(&parse(&relu6).unwrap()).unwrap().act, super::Act::Relu6);
        let gelu = GOOD.replace("divisor = 8", "divisor = 8\nactivation = \"gelu\"");
        assert!(one_error(&gelu).contains("unknown activation `gelu`; expected `hardswish`, `relu` or `relu6`"));
        let se5 =
            GOOD.replace("widths = [0.5, 1.0]", "widths = [1.0]").replace("[head]", "[se]\nreduction = 5\n\n[head]");
        let err = one_error(&se5);
        assert!(err.contains("blocks3[0]: SE reduction 5 does not divide its 32 channels at width 1"), "{err}");
    }
}
