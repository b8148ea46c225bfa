//! Stage 4: Rust code for every width of a checked [`Net`].
//!
//! Per width, one module behind its cargo feature, holding the layer table
//! as consts, a weights struct whose field types carry the channel counts,
//! and a straight-line `forward`. Plus `VARIANTS`, the compiled-in widths.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::plan::{plan, Kind, Layer, Plan};
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

fn variant_module(net: &Net, p: &Plan) -> TokenStream {
    let feature = &p.feature;
    let module = format_ident!("{}", p.feature);
    let model = &p.model;
    let width = Literal::f32_suffixed(p.width as f32);
    let [ic, ih, iw] = net.input.map(Literal::usize_unsuffixed);
    let classes = Literal::usize_unsuffixed(net.classes);
    let params = Literal::u64_unsuffixed(p.params());
    let macs = Literal::u64_unsuffixed(p.macs());
    let act = match net.act {
        Act::HardSwish => quote!(Activation::HardSwish),
        Act::Relu => quote!(Activation::Relu),
        Act::Relu6 => quote!(Activation::Relu6),
    };
    let dropout_scale = Literal::f32_suffixed(net.dropout_scale as f32);
    let head_bias = net.head_bias;

    let layer_infos = p.layers.iter().map(layer_info);
    let mut fields = Vec::new();
    let mut loads = Vec::new();
    let mut steps = Vec::new();
    // Channels of the last feature map (the head's input).
    let mut last_channels = Literal::usize_unsuffixed(0);
    let mut head = format_ident!("head");
    for l in &p.layers {
        let field = format_ident!("{}", l.field);
        let name = &l.name;
        let [c_in, c_out, mid, k] = [l.in_c, l.out_c, l.mid, l.kernel].map(Literal::usize_unsuffixed);
        let [sh, sw] = l.stride.map(Literal::usize_unsuffixed);
        let doc = format!("`{name}`: {}", describe(l));
        match l.kind {
            Kind::Stem => {
                fields.push(quote! { #[doc = #doc] pub #field: Stem<#c_out> });
                loads.push(quote! { #field: Stem::load(ck, #name, #k, [#sh, #sw], #act)? });
                steps.push(quote! { let x = self.#field.forward(input, ws)?; });
            }
            Kind::Depthwise => {
                fields.push(quote! { #[doc = #doc] pub #field: DwConv<#c_out> });
                loads.push(quote! { #field: DwConv::load(ck, #name, #k, [#sh, #sw], #act)? });
                steps.push(quote! { let x = self.#field.forward(x, ws); });
            }
            Kind::SqueezeExcite => {
                fields.push(quote! { #[doc = #doc] pub #field: Se<#c_in, #mid> });
                loads.push(quote! { #field: Se::load(ck, #name)? });
                steps.push(quote! { let x = self.#field.forward(x, ws); });
            }
            Kind::Pointwise => {
                fields.push(quote! { #[doc = #doc] pub #field: PwConv<#c_in, #c_out> });
                loads.push(quote! { #field: PwConv::load(ck, #name, #act)? });
                steps.push(quote! { let x = self.#field.forward(x, ws); });
            }
            // The head is one layer in the generated code: GAP, the optional
            // 1x1 conv and the FC.
            Kind::HeadConv => {}
            Kind::Fc => {
                let (features, hidden) = (l.mid, if net.head_conv { net.head_channels } else { 0 });
                let doc = if net.head_conv {
                    format!(
                        "`last_conv` + `fc`: GAP, 1x1 conv {features} -> {hidden}, activation, dropout x{}, FC",
                        net.dropout_scale as f32
                    )
                } else {
                    format!("`fc`: GAP, FC from {features} features")
                };
                let (features, hidden) = (Literal::usize_unsuffixed(features), Literal::usize_unsuffixed(hidden));
                let bias = net.head_bias;
                fields.push(quote! { #[doc = #doc] pub #field: Head<#features, #hidden> });
                loads.push(quote! { #field: Head::load(ck, "last_conv", "fc", #act, INFO.dropout_scale, #bias)? });
                last_channels = features;
                head = field.clone();
                steps.push(quote! { Ok(x) });
            }
        }
        if let Some(stage) = &l.ends_stage {
            steps.push(quote! { ws.record(#stage, &x); });
        }
    }

    let module_doc = format!(
        "{model}: PP-LCNet at width {w}, {params} parameters and {macs} multiply-accumulates \
         at {ih}x{iw} with {classes} classes.\n\n\
         ## Paper\n\nCui et al., \"PP-LCNet: A Lightweight CPU Convolutional Neural Network\", 2021.\n\n\
         ## References\n\nPaddleClas `ppcls/arch/backbone/legendary_models/pp_lcnet.py` (`PPLCNet(scale={w})`).",
        w = p.width,
        params = p.params(),
        macs = p.macs(),
        ih = net.input[1],
        iw = net.input[2],
        classes = net.classes,
    );
    quote! {
        #[cfg(feature = #feature)]
        #[doc = #module_doc]
        pub mod #module {
            use ::lcnet_zoo::lcnet_core::kernels::Activation;
            use ::lcnet_zoo::lcnet_core::layers::{DwConv, Head, PwConv, Se, Stem};
            use ::lcnet_zoo::lcnet_core::ndarray::{Array2, ArrayView4};
            use ::lcnet_zoo::lcnet_core::{
                Checkpoint, FeatureMap, LayerInfo, LayerKind, Network, Result, VariantInfo, Workspace,
            };

            /// Width multiplier.
            pub const WIDTH: f32 = #width;
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
                layers: LAYERS,
                load: load_network,
            };

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
                    ::lcnet_zoo::lcnet_core::forward_per_image(
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

            // Re-assert the channel chain (rustc also checks it through the field types).
            const _: () = assert!(LAYERS[0].in_channels == INPUT[0]);
        }
    }
}

fn layer_info(l: &Layer) -> TokenStream {
    let name = &l.name;
    let kind = match l.kind {
        Kind::Stem => quote!(Stem),
        Kind::Depthwise => quote!(Depthwise),
        Kind::SqueezeExcite => quote!(SqueezeExcite),
        Kind::Pointwise => quote!(Pointwise),
        Kind::HeadConv => quote!(HeadConv),
        Kind::Fc => quote!(Fc),
    };
    let [k, ci, co, mid, sh, sw, oh, ow] =
        [l.kernel, l.in_c, l.out_c, l.mid, l.stride[0], l.stride[1], l.out_hw[0], l.out_hw[1]]
            .map(Literal::usize_unsuffixed);
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

fn describe(l: &Layer) -> String {
    match l.kind {
        Kind::Stem => format!(
            "{k}x{k} conv stride {s:?}, {} -> {} channels, BN, activation",
            l.in_c,
            l.out_c,
            k = l.kernel,
            s = l.stride
        ),
        Kind::Depthwise => format!(
            "{k}x{k} depthwise conv stride {s:?} on {} channels, BN, activation",
            l.out_c,
            k = l.kernel,
            s = l.stride
        ),
        Kind::SqueezeExcite => format!("SE on {} channels, bottleneck {}", l.in_c, l.mid),
        Kind::Pointwise => format!("1x1 conv {} -> {} channels, BN, activation", l.in_c, l.out_c),
        Kind::HeadConv | Kind::Fc => String::new(),
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
