//! Stage 5: Rust code for every width of a checked [`Net`].
//!
//! Per width, one module behind its cargo feature, holding the layer table
//! as consts, a weights struct whose field types carry the channel counts,
//! and a straight-line `forward`. Plus `VARIANTS`, the compiled-in widths.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::plan::{plan, Layer, Op, Plan};
use crate::validate::{Act, Net};

/// Code for the whole network. `tracked_file` is the absolute path of the
/// TOML file (if any), included so cargo rebuilds when it changes.
pub fn network(net: &Net, tracked_file: Option<&str>) -> TokenStream {
    let plans: Vec<Plan> = net.widths.iter().map(|&w| plan(net, w)).collect();
    let modules = plans.iter().map(|p| variant_module(net, p));
    let entries = plans.iter().map(|p| {
        let feature = &p.feature;
        let module = format_ident!("{}", p.feature);
        quote! { #[cfg(feature = #feature)] #module::INFO }
    });
    let track = tracked_file.map(|path| {
        quote! { const _: &[u8] = ::core::include_bytes!(#path); }
    });
    let doc = format!("Every width of `{}` compiled into this build (one cargo feature each).", net.name);
    quote! {
        #track
        #(#modules)*

        #[doc = #doc]
        pub const VARIANTS: &[::lcnet_zoo::lcnet_core::VariantInfo] = &[#(#entries),*];
    }
}

/// The module of one width: its consts, the weights struct and `forward`.
fn variant_module(net: &Net, p: &Plan) -> TokenStream {
    let feature = &p.feature;
    let module = format_ident!("{}", p.feature);
    let module_doc = module_doc(net, p);
    let consts = consts(net, p);
    let weights = weights(p, &LayerCode::of(net, p));
    quote! {
        #[cfg(feature = #feature)]
        #[doc = #module_doc]
        pub mod #module {
            use ::lcnet_zoo::lcnet_core::__private::kernels::Activation;
            use ::lcnet_zoo::lcnet_core::__private::layers::{DwConv, Head, PwConv, Se, Stem};
            use ::lcnet_zoo::lcnet_core::ndarray::{Array2, ArrayView4};
            use ::lcnet_zoo::lcnet_core::{
                Checkpoint, FeatureMap, LayerInfo, LayerKind, Network, Result, VariantInfo, Workspace,
            };

            #consts

            #weights

            // Re-assert the channel chain (rustc also checks it through the field types).
            const _: () = assert!(LAYERS[0].in_channels == INPUT[0]);
        }
    }
}

/// `WIDTH`, `INPUT`, `PARAMS`, `MACS`, the `LAYERS` table and `INFO`.
fn consts(net: &Net, p: &Plan) -> TokenStream {
    let (feature, model) = (&p.feature, &p.model);
    let width = Literal::f64_suffixed(p.width);
    let [ic, ih, iw] = net.input.map(Literal::usize_unsuffixed);
    let classes = Literal::usize_unsuffixed(net.classes);
    let params = Literal::u64_unsuffixed(p.params());
    let macs = Literal::u64_unsuffixed(p.macs());
    let dropout_scale = Literal::f32_suffixed(net.dropout_scale as f32);
    let head_bias = net.head_bias;
    let activation = activation(net);
    let layer_infos = p.layers.iter().map(layer_info);
    quote! {
    /// Width multiplier, as the table writes it.
    pub const WIDTH: f64 = #width;
    /// Default input `[channels, height, width]`.
    pub const INPUT: [usize; 3] = [#ic, #ih, #iw];
    /// Trainable parameters at the default classes (BN running statistics excluded).
    pub const PARAMS: u64 = #params;
    /// Multiply-accumulates of every conv and the FC, one image at the default input.
    pub const MACS: u64 = #macs;
    /// The layer table at the default input.
    pub const LAYERS: &[LayerInfo] = &[#(#layer_infos),*];
    /// This variant for the registry.
    pub const INFO: VariantInfo = VariantInfo {
        name: #model,
        feature: #feature,
        width: WIDTH,
        input: INPUT,
        classes: #classes,
        params: PARAMS,
        macs: MACS,
        dropout_scale: #dropout_scale,
        head_bias: #head_bias,
        activation: #activation,
        layers: LAYERS,
        load: load_network,
    };
    }
}

/// The table's activation as a `kernels::Activation` path.
fn activation(net: &Net) -> TokenStream {
    match net.act {
        Act::HardSwish => quote!(Activation::HardSwish),
        Act::Relu => quote!(Activation::Relu),
        Act::Relu6 => quote!(Activation::Relu6),
    }
}

/// The `Weights` struct: loading, `forward`, `features` and `Network`.
fn weights(p: &Plan, body: &LayerCode) -> TokenStream {
    let model = &p.model;
    let (fields, loads, steps) = (&body.fields, &body.loads, &body.steps);
    let (head, last_channels) = (&body.head, &body.last_channels);
    quote! {
    /// The folded weights of every layer; field types carry the channel counts.
    #[derive(Debug, Clone)]
    pub struct Weights {
        #(#fields,)*
    }

    impl Weights {
        /// Loads a PaddleClas-layout checkpoint; every tensor must be used.
        pub fn load(ck: &mut Checkpoint) -> Result<Self> {
            let weights = Weights { #(#loads,)* };
            ck.finish(#model)?;
            Ok(weights)
        }

        /// Runs an NCHW batch `[n, 3, h, w]`; returns `[n, classes]` logits.
        pub fn forward(&self, input: ArrayView4<f32>, ws: &mut Workspace) -> Result<Array2<f32>> {
            let x = self.features(input, ws)?;
            Ok(self.#head.forward(x, ws))
        }

        /// Runs an NCHW batch `[n, 3, h, w]` up to the head; returns the last feature map.
        pub fn features(&self, input: ArrayView4<f32>, ws: &mut Workspace) -> Result<FeatureMap<#last_channels>> {
            #(#steps)*
        }
    }

    impl Network for Weights {
        fn variant(&self) -> &'static VariantInfo {
            &INFO
        }

        fn classes(&self) -> usize {
            self.#head.classes()
        }

        fn forward(&self, input: ArrayView4<f32>, ws: &mut Workspace) -> Result<Array2<f32>> {
            // Several images go one at a time, in parallel groups
            // (cache-friendly), then through the head together (it
            // reads its weights once for the batch).
            ::lcnet_zoo::lcnet_core::__private::forward_per_image(
                input,
                ws,
                |x, ws| self.features(x, ws),
                |x, ws| self.#head.forward(x, ws),
            )
        }
    }

    fn load_network(ck: &mut Checkpoint) -> Result<::std::boxed::Box<dyn Network>> {
        Ok(::std::boxed::Box::new(Weights::load(ck)?))
    }
    }
}

/// The per-layer pieces of a variant's `Weights`: struct fields, their
/// loads, and the statements of `features`.
struct LayerCode {
    fields: Vec<TokenStream>,
    loads: Vec<TokenStream>,
    steps: Vec<TokenStream>,
    /// The head's field.
    head: Ident,
    /// Channels of the last feature map (the head's input).
    last_channels: Literal,
}

impl LayerCode {
    fn of(net: &Net, p: &Plan) -> LayerCode {
        let act = activation(net);
        let mut code = LayerCode {
            fields: Vec::new(),
            loads: Vec::new(),
            steps: Vec::new(),
            head: format_ident!("head"),
            last_channels: Literal::usize_unsuffixed(0),
        };
        for l in &p.layers {
            code.push(net, l, &act);
            if let Some(stage) = &l.ends_stage {
                code.steps.push(quote! { ws.record(#stage, &x); });
            }
        }
        code
    }

    fn push(&mut self, net: &Net, l: &Layer, act: &TokenStream) {
        let field = format_ident!("{}", l.field);
        let name = &l.name;
        let doc = format!("`{name}`: {}", describe(&l.op));
        let [sh, sw] = l.op.stride().map(Literal::usize_unsuffixed);
        let k = Literal::usize_unsuffixed(l.op.kernel());
        let (field_type, load, step) = match l.op {
            Op::Stem { out_c, .. } => {
                let c_out = Literal::usize_unsuffixed(out_c);
                (
                    quote!(Stem<#c_out>),
                    quote!(Stem::load(ck, #name, #k, [#sh, #sw], #act)?),
                    quote! { let x = self.#field.forward(input, ws)?; },
                )
            }
            Op::Depthwise { channels, .. } => {
                let c = Literal::usize_unsuffixed(channels);
                (
                    quote!(DwConv<#c>),
                    quote!(DwConv::load(ck, #name, #k, [#sh, #sw], #act)?),
                    quote! { let x = self.#field.forward(x, ws); },
                )
            }
            Op::SqueezeExcite { channels, mid } => {
                let [c, mid] = [channels, mid].map(Literal::usize_unsuffixed);
                (quote!(Se<#c, #mid>), quote!(Se::load(ck, #name)?), quote! { let x = self.#field.forward(x, ws); })
            }
            Op::Pointwise { in_c, out_c } => {
                let [c_in, c_out] = [in_c, out_c].map(Literal::usize_unsuffixed);
                (
                    quote!(PwConv<#c_in, #c_out>),
                    quote!(PwConv::load(ck, #name, #act)?),
                    quote! { let x = self.#field.forward(x, ws); },
                )
            }
            // The head is one layer in the generated code: GAP, the optional
            // 1x1 conv and the FC; it is emitted at the FC.
            Op::HeadConv { .. } => return,
            Op::Fc { features, .. } => {
                let hidden = if net.head_conv { net.head_channels } else { 0 };
                let doc = head_doc(net, features);
                let (features, hidden) = (Literal::usize_unsuffixed(features), Literal::usize_unsuffixed(hidden));
                let bias = net.head_bias;
                self.fields.push(quote! { #[doc = #doc] pub #field: Head<#features, #hidden> });
                self.loads.push(quote! { #field: Head::load(ck, "last_conv", "fc", #act, INFO.dropout_scale, #bias)? });
                self.steps.push(quote! { Ok(x) });
                self.last_channels = features;
                self.head = field;
                return;
            }
        };
        self.fields.push(quote! { #[doc = #doc] pub #field: #field_type });
        self.loads.push(quote! { #field: #load });
        self.steps.push(step);
    }
}

fn module_doc(net: &Net, p: &Plan) -> String {
    format!(
        "{model}: PP-LCNet at width {w}, {params} parameters and {macs} multiply-accumulates \
         at {ih}x{iw} with {classes} classes.\n\n\
         ## Paper\n\nCui et al., \"PP-LCNet: A Lightweight CPU Convolutional Neural Network\", 2021.\n\n\
         ## References\n\nPaddleClas `ppcls/arch/backbone/legendary_models/pp_lcnet.py` (`PPLCNet(scale={w})`).",
        model = p.model,
        w = p.width,
        params = p.params(),
        macs = p.macs(),
        ih = net.input[1],
        iw = net.input[2],
        classes = net.classes,
    )
}

fn head_doc(net: &Net, features: usize) -> String {
    if net.head_conv {
        format!(
            "`last_conv` + `fc`: GAP, 1x1 conv {features} -> {}, activation, dropout x{}, FC",
            net.head_channels, net.dropout_scale as f32
        )
    } else {
        format!("`fc`: GAP, FC from {features} features")
    }
}

fn layer_info(l: &Layer) -> TokenStream {
    let name = &l.name;
    let kind = match l.op {
        Op::Stem { .. } => quote!(Stem),
        Op::Depthwise { .. } => quote!(Depthwise),
        Op::SqueezeExcite { .. } => quote!(SqueezeExcite),
        Op::Pointwise { .. } => quote!(Pointwise),
        Op::HeadConv { .. } => quote!(HeadConv),
        Op::Fc { .. } => quote!(Fc),
    };
    let op = &l.op;
    let [k, ci, co, mid] =
        [op.kernel(), op.in_channels(), op.out_channels(), op.mid_channels()].map(Literal::usize_unsuffixed);
    let [sh, sw] = op.stride().map(Literal::usize_unsuffixed);
    let [oh, ow] = l.out_hw.map(Literal::usize_unsuffixed);
    let (params, macs) = (Literal::u64_unsuffixed(l.params), Literal::u64_unsuffixed(l.macs));
    quote! {
        LayerInfo {
            name: #name,
            kind: LayerKind::#kind,
            kernel: #k,
            stride: [#sh, #sw],
            in_channels: #ci,
            out_channels: #co,
            mid_channels: #mid,
            out_hw: [#oh, #ow],
            params: #params,
            macs: #macs,
        }
    }
}

fn describe(op: &Op) -> String {
    match *op {
        Op::Stem { kernel: k, stride: s, out_c } => {
            format!("{k}x{k} conv stride {s:?}, 3 -> {out_c} channels, BN, activation")
        }
        Op::Depthwise { kernel: k, stride: s, channels } => {
            format!("{k}x{k} depthwise conv stride {s:?} on {channels} channels, BN, activation")
        }
        Op::SqueezeExcite { channels, mid } => format!("SE on {channels} channels, bottleneck {mid}"),
        Op::Pointwise { in_c, out_c } => format!("1x1 conv {in_c} -> {out_c} channels, BN, activation"),
        Op::HeadConv { .. } | Op::Fc { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The expansion of `tests/expansion/tiny.toml`, formatted, must equal
    /// the committed `tiny.expanded.rs`; `LCNET_UPDATE_SNAPSHOTS=1` rewrites
    /// it (then review the diff).
    #[test]
    fn expansion_matches_the_committed_snapshot() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expansion");
        let source = std::fs::read_to_string(dir.join("tiny.toml")).unwrap();
        let net = crate::validate::check(&crate::config::parse(&source).unwrap()).unwrap();
        let tokens = super::network(&net, None);
        let file: syn::File = syn::parse2(tokens).expect("the expansion parses as a Rust file");
        let expanded = format!(
            "// Generated by lcnet-macros from tiny.toml; checked by expand::tests. Do not edit.\n{}",
            prettyplease::unparse(&file)
        );
        let snapshot = dir.join("tiny.expanded.rs");
        if std::env::var_os("LCNET_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&snapshot, &expanded).unwrap();
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if expanded != expected {
            let first = expanded.lines().zip(expected.lines()).position(|(a, b)| a != b);
            panic!(
                "the expansion of tiny.toml changed (first differing line: {:?}); if intended, run \
                 `LCNET_UPDATE_SNAPSHOTS=1 cargo test -p lcnet-macros` and commit tiny.expanded.rs",
                first.map(|i| i + 1)
            );
        }
    }
}
