//! Transfer: the planner on many layout pairs (plain data, no GPU), and on the GPU, that `grow`
//! preserves the source's function where it claims to.

mod common;

use common::gpu;
use gpu_cnn::layers::activation::ActivationLayer;
use gpu_cnn::layers::batchnorm::BatchNorm;
use gpu_cnn::layers::conv2d::Conv2d;
use gpu_cnn::layers::dense::Dense;
use gpu_cnn::layers::depthwise_conv2d::DepthwiseConv2d;
use gpu_cnn::layers::separable_conv2d::SeparableConv2d;
use gpu_cnn::layers::globalavgpool2d::GlobalAvgPool2d;
use gpu_cnn::layers::maxpool2d::MaxPool2d;
use gpu_cnn::layers::{Activation, LayerKind, Padding};
use gpu_cnn::model::ModelSpec;
use gpu_cnn::network::{initial_params, Network, Pass};
use gpu_cnn::transfer::{apply, plan, Action, Strategy};

fn conv(filters: u32) -> (Option<String>, LayerKind) {
    (None, LayerKind::Conv2d(Conv2d::new(filters, 3, Padding::Same, Activation::Relu)))
}
fn pool() -> (Option<String>, LayerKind) {
    (None, LayerKind::MaxPool2d(MaxPool2d::default()))
}
fn flat() -> (Option<String>, LayerKind) {
    (None, LayerKind::Flatten(Default::default()))
}
fn dense(units: u32) -> (Option<String>, LayerKind) {
    (None, LayerKind::Dense(Dense::new(units, Activation::Relu)))
}
fn head(classes: u32) -> (Option<String>, LayerKind) {
    if classes == 2 {
        (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid)))
    } else {
        (None, LayerKind::Dense(Dense::new(classes, Activation::Softmax)))
    }
}
/// A conv without activation (and, with `bias` false, without bias), for a batchnorm after it.
fn linear_conv(filters: u32, bias: bool) -> (Option<String>, LayerKind) {
    (None, LayerKind::Conv2d(Conv2d { use_bias: bias, ..Conv2d::new(filters, 3, Padding::Same, Activation::Linear) }))
}
fn norm(relu: bool) -> (Option<String>, LayerKind) {
    (None, LayerKind::BatchNorm(BatchNorm { activation: if relu { Activation::Relu } else { Activation::Linear }, ..Default::default() }))
}
fn spec(input: [u32; 3], layers: Vec<(Option<String>, LayerKind)>) -> ModelSpec {
    ModelSpec::new(input, layers).unwrap()
}

fn actions(p: &gpu_cnn::transfer::Plan) -> Vec<(&str, Action)> {
    p.layers.iter().map(|l| (l.target.as_str(), l.action)).collect()
}

#[test]
fn prefix_copies_model1s_conv_into_model2_and_stops() {
    let p = plan(&ModelSpec::model1(64), &ModelSpec::model2(64), Strategy::Prefix, false, 0);
    println!("{}", p.table());
    assert_eq!(
        actions(&p),
        [
            ("conv2d_1", Action::Copied),
            ("max_pooling2d_1", Action::NoParameters),
            ("conv2d_2", Action::FreshInit),
            ("max_pooling2d_2", Action::NoParameters),
            ("flatten_1", Action::NoParameters),
            ("dense_1", Action::FreshInit),
            ("dense_2", Action::FreshInit),
        ]
    );
    assert_eq!(p.moved, 896);
    assert!(p.layers[2].reason.as_ref().unwrap().contains("type differs (Conv2D vs Dense)"), "{:?}", p.layers[2].reason);
    assert!(p.layers[5].reason.as_ref().unwrap().contains("after the first mismatch"));
    assert_eq!(p.unused, ["dense_1", "dense_2"]);
    assert!(p.table().contains("896 of 1,058,977 parameters (0.1%)"));
}

#[test]
fn match_copies_every_layer_whose_name_and_shape_agree() {
    let p = plan(&ModelSpec::model1(64), &ModelSpec::model2(64), Strategy::Match, false, 0);
    let a = actions(&p);
    assert_eq!(a[0], ("conv2d_1", Action::Copied));
    assert_eq!(a[2], ("conv2d_2", Action::FreshInit));
    assert_eq!(a[5], ("dense_1", Action::FreshInit));
    assert!(p.layers[5].reason.as_ref().unwrap().contains("shape differs ([8192, 128] vs [32768, 128])"));
    assert_eq!(a[6], ("dense_2", Action::Copied), "match finds the head past the mismatch");
    assert_eq!(p.moved, 896 + 129);
}

#[test]
fn grow_turns_model1_into_model2_with_an_identity_conv_and_a_pooled_remap() {
    let p = plan(&ModelSpec::model1(64), &ModelSpec::model2(64), Strategy::Grow, false, 0);
    println!("{}", p.table());
    let a = actions(&p);
    assert_eq!(a[0].1, Action::Copied);
    assert_eq!(a[2].1, Action::Identity);
    assert_eq!(a[5].1, Action::Remapped);
    assert!(p.layers[5].reason.as_ref().unwrap().contains("approximate"));
    assert_eq!(a[6].1, Action::Copied);
    assert!(!p.function_preserving, "the inserted pool makes it approximate");
    assert!(p.unused.is_empty());
}

#[test]
fn identical_layouts_copy_everything() {
    for strategy in [Strategy::Prefix, Strategy::Match, Strategy::Grow] {
        let p = plan(&ModelSpec::model2(32), &ModelSpec::model2(32), strategy, false, 0);
        assert_eq!(p.moved, p.total, "{strategy:?}");
        assert!(p.layers.iter().all(|l| matches!(l.action, Action::Copied | Action::NoParameters)));
    }
}

#[test]
fn wider_narrower_reordered_resized_and_reclassed_layouts() {
    let base = spec([16, 16, 3], vec![conv(8), pool(), conv(8), pool(), flat(), dense(16), head(2)]);

    // Wider: grow replicates; prefix and match cannot copy the changed shapes.
    let wide = spec([16, 16, 3], vec![conv(12), pool(), conv(8), pool(), flat(), dense(20), head(2)]);
    let g = plan(&base, &wide, Strategy::Grow, false, 0);
    assert_eq!(actions(&g).iter().map(|a| a.1).collect::<Vec<_>>(), [Action::Grown, Action::NoParameters, Action::Grown, Action::NoParameters, Action::NoParameters, Action::Grown, Action::Grown]);
    assert!(g.function_preserving && g.moved == g.total);
    let pre = plan(&base, &wide, Strategy::Prefix, false, 0);
    assert_eq!(pre.moved, 0);
    assert!(pre.layers[0].reason.as_ref().unwrap().contains("shape differs"));

    // Narrower: growth cannot shrink; --partial copies the overlapping slice.
    let narrow = spec([16, 16, 3], vec![conv(4), pool(), conv(8), pool(), flat(), dense(16), head(2)]);
    let g = plan(&base, &narrow, Strategy::Grow, false, 0);
    assert_eq!(g.layers[0].action, Action::FreshInit);
    assert!(g.layers[0].reason.as_ref().unwrap().contains("narrower"));
    let m = plan(&base, &narrow, Strategy::Match, true, 0);
    assert_eq!(m.layers[0].action, Action::Partial);
    assert_eq!(m.layers[0].moved, 3 * 3 * 3 * 4 + 4);
    assert_eq!(m.layers[2].action, Action::Partial, "conv2d_2's input channels shrank");

    // Reordered (dense widths swapped between named layers): match pairs by name and explains.
    let named = |a: &str, b: &str, ua: u32, ub: u32| {
        spec([8, 8, 3], vec![conv(4), pool(), flat(), (Some(a.into()), LayerKind::Dense(Dense::new(ua, Activation::Relu))), (Some(b.into()), LayerKind::Dense(Dense::new(ub, Activation::Relu))), head(2)])
    };
    let p = plan(&named("fc_a", "fc_b", 10, 6), &named("fc_b", "fc_a", 6, 10), Strategy::Match, false, 0);
    assert_eq!(p.layers[3].action, Action::FreshInit);
    assert!(p.layers[3].reason.as_ref().unwrap().contains("shape differs"));

    // Another input size: convs still fit; the dense layer after flatten does not.
    let big = spec([32, 32, 3], vec![conv(8), pool(), conv(8), pool(), flat(), dense(16), head(2)]);
    let m = plan(&base, &big, Strategy::Match, false, 0);
    assert_eq!(actions(&m).iter().map(|a| a.1).collect::<Vec<_>>()[..6], [Action::Copied, Action::NoParameters, Action::Copied, Action::NoParameters, Action::NoParameters, Action::FreshInit]);
    assert_eq!(m.layers[6].action, Action::Copied);
    let g = plan(&base, &big, Strategy::Grow, false, 0);
    assert!(g.layers[0].reason.as_ref().unwrap().contains("input size differs"));
    // The layers after it give the first fresh layer as their reason, not its cause.
    for l in [2, 5, 6] {
        assert_eq!(g.layers[l].reason.as_deref(), Some("after conv2d_1, which starts fresh"), "{}", g.table());
    }

    // Another class count: everything but the head.
    let ten = spec([16, 16, 3], vec![conv(8), pool(), conv(8), pool(), flat(), dense(16), head(10)]);
    for strategy in [Strategy::Match, Strategy::Grow, Strategy::Prefix] {
        let p = plan(&base, &ten, strategy, false, 0);
        assert_eq!(p.layers[6].action, Action::FreshInit, "{strategy:?}");
        assert_eq!(p.moved, p.total - (16 * 10 + 10), "{strategy:?}");
    }
}

#[test]
fn grow_refuses_what_it_cannot_do_exactly_or_consistently() {
    // A 'valid' conv after an inserted pool: the flattened grid no longer matches the source's
    // pooled grid, so the dense layer cannot be remapped (and nothing panics).
    let source = spec([32, 32, 3], vec![conv(4), pool(), flat(), dense(8), head(2)]);
    let valid = (None, LayerKind::Conv2d(Conv2d::new(4, 3, Padding::Valid, Activation::Relu)));
    let target = spec([32, 32, 3], vec![conv(4), pool(), pool(), valid, flat(), dense(8), head(2)]);
    let p = plan(&source, &target, Strategy::Grow, false, 0);
    println!("{}", p.table());
    assert_eq!(p.layers[5].action, Action::FreshInit);
    assert!(!p.function_preserving);

    // An identity conv after a linear conv would meet negative inputs: not claimed exact.
    let linear = (None, LayerKind::Conv2d(Conv2d::new(4, 3, Padding::Same, Activation::Linear)));
    let source = spec([8, 8, 3], vec![linear.clone(), pool(), flat(), dense(8), head(2)]);
    let target = spec([8, 8, 3], vec![linear, conv(4), pool(), flat(), dense(8), head(2)]);
    let p = plan(&source, &target, Strategy::Grow, false, 0);
    assert_eq!(p.layers[1].action, Action::FreshInit);
    assert!(p.layers[1].reason.as_ref().unwrap().contains("can be negative"), "{:?}", p.layers[1].reason);
    assert!(!p.function_preserving);
}

/// Outputs of `source` and of `target` (after `grow` with replicas picked by `seed`) on the
/// same random batch.
fn outputs(source: &ModelSpec, target: &ModelSpec, seed: u64) -> (Vec<f32>, Vec<f32>) {
    outputs_in(Pass::Evaluate, source, target, seed)
}

/// The logits of `source` and of `target` grown from it, in inference mode (`Pass::Evaluate`)
/// or training mode (`Pass::Gradients`: batch statistics).
fn outputs_in(pass: Pass, source: &ModelSpec, target: &ModelSpec, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (ctx, kernels) = gpu();
    let p = plan(source, target, Strategy::Grow, false, seed);
    println!("{}", p.table());
    assert!(p.function_preserving, "grow should be exact here");
    let batch = 5;
    let mut a = Network::new(ctx, kernels, source, batch, 3).unwrap();
    let mut b = Network::new(ctx, kernels, target, batch, 4).unwrap();
    // Source biases, betas and moving means away from 0, gammas and moving variances from 1,
    // so that every replicated or moved value is exercised.
    let names: Vec<String> = a.slots.iter().map(|s| s.info.name.clone()).collect();
    for (i, n) in names.iter().enumerate() {
        let mut w = a.read_param(ctx, n).unwrap();
        let base = if n.ends_with(".gamma") || n.ends_with(".moving_variance") { 1.0 } else { 0.0 };
        if !n.ends_with(".kernel") {
            w.iter_mut().enumerate().for_each(|(k, v)| *v = base + 0.05 * ((k + i) % 5) as f32 - 0.1);
            a.write_param(ctx, n, &w).unwrap();
        }
    }
    let src: Vec<Vec<f32>> = names.iter().map(|n| a.read_param(ctx, n).unwrap()).collect();
    let slots = b.slots.clone();
    for (s, w) in slots.iter().zip(apply(&p, source, &src, target, initial_params(target, 9))) {
        b.write_param(ctx, &s.info.name, &w).unwrap();
    }
    let n = batch as usize * source.input.iter().product::<u32>() as usize;
    let images: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let labels = vec![0; batch as usize];
    for net in [&mut a, &mut b] {
        net.upload(ctx, &images, &labels).unwrap();
        net.run(ctx, pass, 0.0);
    }
    (a.read_logits(ctx).unwrap(), b.read_logits(ctx).unwrap())
}

fn assert_same_function(what: &str, (a, b): (Vec<f32>, Vec<f32>)) {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale;
    println!("{what}: source {a:?}\n{what}: grown  {b:?}\nrelative difference {err:.2e}");
    assert!(err < 1e-5, "{what}: grown network differs by {err:e}");
}

#[test]
fn grow_preserves_the_function_for_an_inserted_conv() {
    let source = spec([10, 9, 3], vec![conv(6), pool(), flat(), dense(7), head(2)]);
    let target = spec([10, 9, 3], vec![conv(6), conv(6), pool(), flat(), dense(7), head(2)]);
    assert_same_function("inserted conv", outputs(&source, &target, 0));
}

#[test]
fn grow_preserves_the_function_when_widening() {
    let source = spec([10, 9, 3], vec![conv(5), pool(), conv(6), pool(), flat(), dense(7), head(3)]);
    let target = spec([10, 9, 3], vec![conv(9), pool(), conv(11), pool(), flat(), dense(12), head(3)]);
    for seed in [0, 1] {
        assert_same_function(&format!("widened convs and dense, seed {seed}"), outputs(&source, &target, seed));
    }
}

fn depthwise(depth_multiplier: u32) -> (Option<String>, LayerKind) {
    (None, LayerKind::DepthwiseConv2d(DepthwiseConv2d { depth_multiplier, ..DepthwiseConv2d::new(3, Padding::Same, Activation::Relu) }))
}
fn separable(filters: u32, depth_multiplier: u32) -> (Option<String>, LayerKind) {
    (None, LayerKind::SeparableConv2d(SeparableConv2d { depth_multiplier, ..SeparableConv2d::new(filters, 3, Padding::Same, Activation::Relu) }))
}

/// Widening through a depthwise conv (multiplier 2): its filters follow their replicated
/// channels; a widened separable conv reads the replicas through its depthwise kernel and
/// shares their weights in its pointwise kernel. A depthwise conv with multiplier 1 inserts as
/// the identity; with multiplier 2 it cannot, and the plan says why.
#[test]
fn grow_preserves_the_function_through_depthwise_and_separable_convs() {
    let source = spec([10, 9, 3], vec![conv(5), depthwise(2), separable(6, 2), pool(), flat(), dense(7), head(3)]);
    let wider = spec([10, 9, 3], vec![conv(8), depthwise(2), separable(9, 2), pool(), flat(), dense(7), head(3)]);
    let p = plan(&source, &wider, Strategy::Grow, false, 0);
    assert_eq!(actions(&p)[..3], [("conv2d_1", Action::Grown), ("depthwise_conv2d_1", Action::Grown), ("separable_conv2d_1", Action::Grown)]);
    for seed in [0, 1] {
        assert_same_function(&format!("widened through depthwise and separable convs, seed {seed}"), outputs(&source, &wider, seed));
    }
    let inserted = spec([10, 9, 3], vec![conv(5), depthwise(1), depthwise(2), separable(6, 2), pool(), flat(), dense(7), head(3)]);
    let p = plan(&source, &inserted, Strategy::Grow, false, 0);
    assert_eq!(actions(&p)[1], ("depthwise_conv2d_1", Action::Identity));
    assert_same_function("inserted depthwise conv", outputs(&source, &inserted, 0));
    let not_identity = spec([10, 9, 3], vec![conv(5), depthwise(2), depthwise(2), separable(6, 2), pool(), flat(), dense(7), head(3)]);
    let p = plan(&not_identity, &spec([10, 9, 3], vec![conv(5), depthwise(2), depthwise(2), depthwise(2), separable(6, 2), pool(), flat(), dense(7), head(3)]), Strategy::Grow, false, 0);
    assert!(!p.function_preserving && p.table().contains("depth_multiplier 1 to start as the identity"), "{}", p.table());
}

/// Copying a depthwise conv with multiplier 2 (prefix and match) moves every value of its
/// kernel and of its bias, which is as wide as its output (twice its input).
#[test]
fn copies_move_whole_depthwise_and_separable_layers() {
    let model = spec([10, 9, 3], vec![conv(5), depthwise(2), separable(6, 2), pool(), flat(), dense(7), head(3)]);
    let src: Vec<Vec<f32>> = initial_params(&model, 1).into_iter().enumerate().map(|(t, w)| w.iter().enumerate().map(|(i, v)| v + (t * 1000 + i) as f32).collect()).collect();
    for strategy in [Strategy::Prefix, Strategy::Match] {
        let p = plan(&model, &model, strategy, false, 0);
        assert!(p.layers.iter().all(|l| matches!(l.action, Action::Copied | Action::NoParameters)), "{}", p.table());
        assert_eq!(apply(&p, &model, &src, &model, initial_params(&model, 2)), src, "{strategy:?}");
    }
}

/// Widened units start as copies of their originals; training must tell them apart (with
/// equal outgoing shares their gradients would stay equal and they would stay copies). A unit
/// whose inputs are replicas is no copy (its weights from them are shared unequally), so the
/// dense layer reads an unwidened conv.
#[test]
fn grown_replicas_part_ways_in_training() {
    let (ctx, kernels) = gpu();
    let source = spec([10, 9, 3], vec![conv(5), pool(), conv(6), pool(), flat(), dense(7), head(3)]);
    let target = spec([10, 9, 3], vec![conv(9), pool(), conv(6), pool(), flat(), dense(12), head(3)]);
    let p = plan(&source, &target, Strategy::Grow, false, 3);
    // A dense bias that keeps every ReLU unit alive on the batch (a dead unit and its copy both
    // stay still).
    let mut src = initial_params(&source, 1);
    src[5].fill(5.0);
    let grown = apply(&p, &source, &src, &target, initial_params(&target, 2));
    let batch = 6;
    let mut net = Network::new(ctx, kernels, &target, batch, 4).unwrap();
    let slots = net.slots.clone();
    for (s, w) in slots.iter().zip(&grown) {
        net.write_param(ctx, &s.info.name, w).unwrap();
    }
    // Unit c's incoming weights (every units-th value of a [.., in, units] kernel from c).
    let unit = |k: &[f32], units: usize, c: usize| k.iter().skip(c).step_by(units).copied().collect::<Vec<f32>>();
    let copies = |k: &[f32], units: usize, old: usize| (old..units).filter(|&c| (0..old).any(|u| unit(k, units, c) == unit(k, units, u))).count();
    assert_eq!((copies(&grown[0], 9, 5), copies(&grown[4], 12, 7)), (4, 5), "every new unit starts as a copy");
    let n = batch as usize * 10 * 9 * 3;
    let images: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    net.upload(ctx, &images, &[0, 1, 2, 0, 1, 2]).unwrap();
    for _ in 0..3 {
        net.run(ctx, Pass::Train, 1e-2);
    }
    let (conv_k, dense_k) = (net.read_param(ctx, "conv2d_1.kernel").unwrap(), net.read_param(ctx, "dense_1.kernel").unwrap());
    assert_eq!((copies(&conv_k, 9, 5), copies(&dense_k, 12, 7)), (0, 0), "replicas still equal after 3 steps");
}

/// Net2Net picks the replicated units at random: another seed widens with other units.
#[test]
fn grow_seed_picks_the_replicated_units() {
    let source = spec([10, 9, 3], vec![conv(5), pool(), flat(), dense(7), head(2)]);
    let target = spec([10, 9, 3], vec![conv(9), pool(), flat(), dense(12), head(2)]);
    let src = initial_params(&source, 1);
    let grown = |seed| apply(&plan(&source, &target, Strategy::Grow, false, seed), &source, &src, &target, initial_params(&target, 2));
    let (a, b) = (grown(0), grown(1));
    assert_eq!(a, grown(0), "one seed grows one way");
    // The kernel is [3, 3, 3, filters]: unit c's weights are every filters-th value from c.
    let unit = |k: &[f32], filters: usize, c: usize| k.iter().skip(c).step_by(filters).copied().collect::<Vec<f32>>();
    let replicas = |k: &[f32]| -> Vec<usize> {
        (0..9).map(|c| (0..5).find(|&u| unit(k, 9, c) == unit(&src[0], 5, u)).expect("a new unit copies no source unit")).collect()
    };
    let (ra, rb) = (replicas(&a[0]), replicas(&b[0]));
    println!("seed 0 replicates {ra:?}, seed 1 {rb:?}");
    assert_eq!(ra[..5], [0, 1, 2, 3, 4], "the source's units keep their places");
    assert_eq!(rb[..5], [0, 1, 2, 3, 4]);
    assert_ne!(ra, rb, "seeds 0 and 1 replicated the same units");
}

/// Growth through batch normalisation, each case exact in inference mode (the outputs are
/// compared in evaluation, with the same 1e-5 relative tolerance).
#[test]
fn grow_preserves_the_function_through_batchnorm() {
    let bn_source = spec([10, 9, 3], vec![linear_conv(5, false), norm(true), pool(), flat(), dense(7), head(2)]);
    // A batchnorm that matches is copied; widened, its four tensors replicate with the conv's units.
    let wider = spec([10, 9, 3], vec![linear_conv(8, false), norm(true), pool(), flat(), dense(9), head(2)]);
    assert_same_function("widened conv + batchnorm", outputs(&bn_source, &wider, 0));

    // A block inserted as the identity: conv (widened 5 -> 7 channels) + batchnorm (ReLU).
    let block = spec([10, 9, 3], vec![linear_conv(5, false), norm(true), linear_conv(7, true), norm(true), pool(), flat(), dense(7), head(2)]);
    let p = plan(&bn_source, &block, Strategy::Grow, false, 0);
    assert_eq!(actions(&p)[2..4], [("conv2d_2", Action::Identity), ("batch_normalization_2", Action::Identity)]);
    assert_same_function("inserted conv + batchnorm block", outputs(&bn_source, &block, 0));

    // A source without batchnorm: the conv's ReLU and bias move to a batchnorm inserted after it.
    let plain = spec([10, 9, 3], vec![conv(6), pool(), conv(5), pool(), flat(), dense(7), head(2)]);
    let normed = spec([10, 9, 3], vec![linear_conv(6, false), norm(true), pool(), linear_conv(5, true), norm(false), (None, LayerKind::Activation(ActivationLayer { activation: Activation::Relu })), pool(), flat(), dense(7), head(2)]);
    let p = plan(&plain, &normed, Strategy::Grow, false, 0);
    println!("{}", p.table());
    assert!(p.layers[0].reason.as_ref().unwrap().contains("ReLU and bias move to batch_normalization_1"), "{:?}", p.layers[0].reason);
    assert!(p.table().contains("in inference mode"));
    assert_same_function("batchnorm inserted after existing convs", outputs(&plain, &normed, 0));

    // A batchnorm of flattened features: every (y, x, channel) feature follows the widened conv.
    let flat_bn = spec([10, 9, 3], vec![conv(5), pool(), flat(), norm(false), dense(7), head(2)]);
    let wider = spec([10, 9, 3], vec![conv(8), pool(), flat(), norm(false), dense(9), head(2)]);
    assert_same_function("widened conv, flatten, batchnorm", outputs(&flat_bn, &wider, 0));
}

#[test]
fn grow_says_why_batchnorm_or_global_pooling_cannot_preserve_the_function() {
    // A ReLU batchnorm inserted after a linear conv would meet negative inputs.
    let source = spec([8, 8, 3], vec![linear_conv(4, true), pool(), flat(), dense(8), head(2)]);
    let target = spec([8, 8, 3], vec![linear_conv(4, true), norm(true), pool(), flat(), dense(8), head(2)]);
    let p = plan(&source, &target, Strategy::Grow, false, 0);
    assert_eq!(p.layers[1].action, Action::FreshInit);
    assert!(p.layers[1].reason.as_ref().unwrap().contains("can be negative"), "{:?}", p.layers[1].reason);
    // Global average pooling in place of flatten: the dense layer after it starts fresh.
    let source = spec([8, 8, 3], vec![conv(4), pool(), flat(), dense(8), head(2)]);
    let gap = spec([8, 8, 3], vec![conv(4), pool(), (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {})), dense(8), head(2)]);
    let p = plan(&source, &gap, Strategy::Grow, false, 0);
    println!("{}", p.table());
    assert_eq!(actions(&p)[..2], [("conv2d_1", Action::Copied), ("max_pooling2d_1", Action::NoParameters)]);
    assert!(p.layers[2].reason.as_ref().unwrap().contains("no function-preserving map"), "{:?}", p.layers[2].reason);
    assert_eq!(p.layers[3].action, Action::FreshInit);
    assert!(!p.function_preserving);
    // A pool inserted before a global average pool: nothing to remap, but not the same function.
    let gap_source = spec([8, 8, 3], vec![conv(4), (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {})), dense(8), head(2)]);
    let pooled = spec([8, 8, 3], vec![conv(4), pool(), (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {})), dense(8), head(2)]);
    let p = plan(&gap_source, &pooled, Strategy::Grow, false, 0);
    assert!(p.layers[1].reason.as_ref().unwrap().contains("approximate") && !p.function_preserving, "{}", p.table());
    // A source ReLU before its batchnorm cannot move past it (relu(x) then normalised is not
    // normalised x then relu).
    let relu_first = spec([8, 8, 3], vec![conv(4), norm(false), pool(), flat(), dense(8), head(2)]);
    let relu_after = spec([8, 8, 3], vec![linear_conv(4, true), norm(false), (None, LayerKind::Activation(ActivationLayer { activation: Activation::Relu })), pool(), flat(), dense(8), head(2)]);
    let p = plan(&relu_first, &relu_after, Strategy::Grow, false, 0);
    assert!(p.layers[1].reason.as_ref().unwrap().contains("ReLU found no place before batch_normalization_1") && !p.function_preserving, "{}", p.table());
}

/// configs/model2.toml grows into configs/model3.toml with most parameters carried over (the
/// third block's pool halves the flattened grid, so dense_1 is remapped: approximate).
#[test]
fn model2_grows_into_model3() {
    let load = |f: &str| gpu_cnn::config::Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap().model;
    let p = plan(&load("configs/model2.toml"), &load("configs/model3.toml"), Strategy::Grow, false, 0);
    println!("{}", p.table());
    let a: Vec<Action> = p.layers.iter().map(|l| l.action).collect();
    use Action::*;
    assert_eq!(a, [Copied, Identity, NoParameters, Copied, Identity, NoParameters, Identity, Identity, NoParameters, NoParameters, Remapped, Copied]);
    assert!(p.fraction() > 0.95, "{}", p.fraction());
    assert!(p.unused.is_empty());
}

/// `--data`: the inserted batchnorms' statistics measured on the images they will train on;
/// inference stays exact, and a training-mode pass over that same batch (batch statistics equal
/// to the measured ones) gives the source's outputs too.
#[test]
fn calibrated_batchnorms_are_the_identity_in_training_mode_on_their_data() {
    let (ctx, kernels) = gpu();
    let source = spec([10, 9, 3], vec![conv(6), pool(), flat(), dense(7), head(2)]);
    let target = spec([10, 9, 3], vec![linear_conv(6, false), norm(true), pool(), flat(), dense(7), head(2)]);
    let images = gpu_cnn::data::synthetic::generate(12, [10, 9, 3], 3);
    let mut a = Network::new(ctx, kernels, &source, 12, 3).unwrap();
    let bias: Vec<f32> = (0..6).map(|k| 0.05 * k as f32 - 0.1).collect();
    a.write_param(ctx, "conv2d_1.bias", &bias).unwrap();
    let src = gpu_cnn::checkpoint::Checkpoint::capture(ctx, &a, &images.classes, Default::default(), false).unwrap();
    let (mut p, mut grown) = gpu_cnn::transfer::transfer(&src, std::path::Path::new("src.safetensors"), &target, 1, 1e-3, Strategy::Grow, false);
    let set = gpu_cnn::transfer::calibrate::calibrate(ctx, &mut p, &mut grown, images.clone()).unwrap();
    assert_eq!(set, ["batch_normalization_1"]);
    assert!(p.layers[1].reason.as_ref().unwrap().contains("measured on 12 training images"));
    let gamma = &grown.params[1];
    assert!(gamma.iter().all(|&g| (g - 1.0).abs() > 1e-3), "gamma undoes the measured spread: {gamma:?}");

    let mut b = gpu_cnn::predict::network(ctx, &grown, 12).unwrap();
    let pixels: Vec<f32> = images.pixels.iter().map(|&v| v as f32 / 255.0).collect();
    let logits = |net: &mut Network, pass: Pass| {
        net.upload(ctx, &pixels, &images.labels).unwrap();
        net.run(ctx, pass, 0.0);
        net.read_logits(ctx).unwrap()
    };
    let want = logits(&mut a, Pass::Evaluate);
    assert_same_function("calibrated, inference mode", (want.clone(), logits(&mut b, Pass::Evaluate)));
    // Gradients: a training-mode forward without an update.
    let train = logits(&mut b, Pass::Gradients);
    let err = want.iter().zip(&train).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / want.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("training mode on the calibration batch: relative difference {err:.2e}");
    assert!(err < 1e-4, "training mode differs by {err:e}");
}

/// A config a growth operator edits: input, layers, and a comment it must keep.
const GROWABLE: &str = r#"# a small model
[model]
input = [10, 9, 3]
layers = [
  { type = "conv2d", filters = 5, kernel = 3, padding = "same", activation = "relu" },
  { type = "maxpool2d", pool = 2 },
  { type = "conv2d", filters = 6, kernel = 3, padding = "same", activation = "relu" },
  { type = "flatten" },
  { type = "dense", units = 7, activation = "relu" },
  { type = "dense", units = 3, activation = "softmax" },
]
"#;

fn grown(text: &str, ops: &[gpu_cnn::grow::Op]) -> (ModelSpec, ModelSpec, Vec<String>) {
    let path = std::path::Path::new("grown.toml");
    let source = gpu_cnn::config::Config::parse(path, text).unwrap().model;
    let g = gpu_cnn::grow::grow(text, &source, ops).unwrap();
    println!("{}", g.text);
    assert!(g.text.contains("# a small model"), "the config's comments are kept");
    let target = gpu_cnn::config::Config::parse(path, &g.text).unwrap().model;
    (source, target, g.changes)
}

#[test]
fn growth_operators_write_configs_that_grow_exactly() {
    use gpu_cnn::grow::Op;
    let kinds = |m: &ModelSpec| m.layers.iter().map(|l| l.kind.ops().class()).collect::<Vec<_>>().join(" ");

    let (source, target, changes) = grown(GROWABLE, &[Op::Deepen("max_pooling2d_1".into())]);
    assert_eq!(kinds(&target), "Conv2D MaxPooling2D Conv2D Conv2D Flatten Dense Dense");
    assert_eq!(changes, ["deepen after max_pooling2d_1: conv2d 5 filters 3x3 + relu"]);
    assert_same_function("deepen", outputs(&source, &target, 0));

    let (source, target, _) = grown(GROWABLE, &[Op::Widen("conv2d_1".into(), 2.0), Op::Widen("dense_1".into(), 1.5)]);
    assert_eq!(target.param_count(), 10 * 27 + 10 + 10 * 9 * 6 + 6 + 5 * 4 * 6 * 11 + 11 + 11 * 3 + 3);
    assert_same_function("widen", outputs(&source, &target, 0));

    let (source, target, _) = grown(GROWABLE, &[Op::AddBatchnorm("conv2d_2".into())]);
    assert_eq!(kinds(&target), "Conv2D MaxPooling2D Conv2D BatchNormalization Flatten Dense Dense");
    assert_same_function("add_batchnorm", outputs(&source, &target, 0));

    // All at once, named as in the given config whatever the order: with a batchnorm added, the
    // deepening block brings its own, at the widened width.
    let ops = [Op::Deepen("max_pooling2d_1".into()), Op::AddBatchnorm("conv2d_1".into()), Op::Widen("conv2d_1".into(), 2.0)];
    let (source, target, changes) = grown(GROWABLE, &ops);
    assert_eq!(kinds(&target), "Conv2D BatchNormalization MaxPooling2D Conv2D BatchNormalization Conv2D Flatten Dense Dense");
    assert_eq!(changes[0], "deepen after max_pooling2d_1: conv2d 10 filters 3x3 + batchnorm + relu");
    assert_same_function("deepen + add_batchnorm + widen", outputs(&source, &target, 0));
}

/// A config with a skip connection: an identity block, then a strided conv.
const RESIDUAL: &str = r#"# a small model with a skip connection
[model]
input = [10, 9, 3]
layers = [
  { type = "conv2d", filters = 5, kernel = 3, padding = "same", use_bias = false },
  { type = "batchnorm", activation = "relu" },
  { type = "conv2d", filters = 5, kernel = 3, padding = "same", use_bias = false },
  { type = "batchnorm" },
  { type = "add", activation = "relu", inputs = ["batch_normalization_2", "batch_normalization_1"] },
  { type = "conv2d", filters = 6, kernel = 3, stride = 2, padding = "same", use_bias = false },
  { type = "batchnorm" },
  { type = "globalavgpool2d" },
  { type = "dense", units = 3, activation = "softmax" },
]
"#;

/// `deepen` in a model with skip connections inserts residual blocks whose last batchnorm
/// starts at gamma = beta = 0: the grown model computes the source's function in inference
/// mode and in training mode (batch statistics) alike; relative tolerance 1e-5 of the largest
/// logit. Layers that read the deepened layer read the block's sum; names stay as they were.
#[test]
fn deepening_with_residual_blocks_keeps_the_function_in_training_and_inference() {
    use gpu_cnn::grow::Op;
    let ops = [Op::Deepen("batch_normalization_1".into()), Op::Deepen("batch_normalization_3".into())];
    let (source, target, changes) = grown(RESIDUAL, &ops);
    assert_eq!(changes[0], "deepen after batch_normalization_1: residual block of 2 conv2d 5 filters 3x3 + batchnorm, joined to batch_normalization_1 by add_2 + relu; batch_normalization_5 starts at gamma = 0, so the block adds 0");
    // After a batchnorm without ReLU the value can be negative: the sum keeps no ReLU.
    assert!(changes[1].ends_with("joined to batch_normalization_3 by add_3; batch_normalization_7 starts at gamma = 0, so the block adds 0"), "{}", changes[1]);
    let reads = |name: &str| target.layers.iter().find(|l| l.name == name).unwrap().inputs.clone();
    assert_eq!(reads("add_1"), ["batch_normalization_2", "add_2"]);
    assert_eq!(reads("add_2"), ["batch_normalization_5", "batch_normalization_1"]);
    assert_eq!(target.layers.len(), source.layers.len() + 10);
    let p = plan(&source, &target, Strategy::Grow, false, 0);
    println!("{}", p.table());
    let zeroed = p.layers.iter().filter(|l| l.action == Action::Identity).map(|l| l.target.as_str()).collect::<Vec<_>>();
    assert_eq!(zeroed, ["batch_normalization_5", "batch_normalization_7"]);
    assert_eq!(p.layers.iter().filter(|l| l.action == Action::InBlock).count(), 6);
    assert!(p.table().contains("; the new model computes the same function as the source\n"), "in either mode");
    assert_same_function("residual deepen, inference mode", outputs_in(Pass::Evaluate, &source, &target, 0));
    assert_same_function("residual deepen, training mode", outputs_in(Pass::Gradients, &source, &target, 0));
    // New batchnorms take the model's own momentum.
    let (_, target, _) = grown(&RESIDUAL.replace("{ type = \"batchnorm\"", "{ type = \"batchnorm\", momentum = 0.9"), &ops[..1]);
    assert!(target.layers.iter().all(|l| !matches!(&l.kind, LayerKind::BatchNorm(bn) if bn.momentum != 0.9)), "every batchnorm at 0.9");
    // A branch no add joins back is not the identity.
    let mut broken = target.clone();
    let add = broken.layers.iter().position(|l| l.name == "add_2").unwrap();
    broken.layers[add].inputs = vec!["batch_normalization_4".into(), "batch_normalization_1".into()];
    broken.layers.remove(add - 1);
    broken.layers.remove(add - 2);
    let p = plan(&source, &broken, Strategy::Grow, false, 0);
    assert!(!p.function_preserving, "{}", p.table());
    // What the growth of skip connections does not plan is refused by name.
    let err = |op: Op| gpu_cnn::grow::grow(RESIDUAL, &source, &[op]).err().expect("refused").to_string();
    assert!(err(Op::AddBatchnorm("conv2d_2".into())).contains("deepen inserts residual blocks"));
    assert!(err(Op::Deepen("global_average_pooling2d_1".into())).contains("a residual block goes where the activation is an image"));
}

/// `[[grow]] blocks = "fresh"`: the inserted blocks' last batchnorms keep their initialisation
/// (gamma = 1, beta = 0) instead of starting at zero, the plan says the function is not kept,
/// and everything else moves as with identity blocks.
#[test]
fn fresh_residual_blocks_start_as_initialised() {
    use gpu_cnn::grow::Op;
    use gpu_cnn::transfer::NewBlocks;
    let (source, target, _) = grown(RESIDUAL, &[Op::Deepen("batch_normalization_1".into())]);
    let ckpt = gpu_cnn::checkpoint::Checkpoint {
        model: source.clone(),
        classes: vec!["a".into(), "b".into()],
        params: gpu_cnn::network::initial_params(&source, 1),
        optimizer: None,
        state: Default::default(),
        provenance: None,
    };
    let (identity, kept) = gpu_cnn::transfer::grow_checkpoint(&ckpt, &target, 3, NewBlocks::Identity);
    let (fresh, changed) = gpu_cnn::transfer::grow_checkpoint(&ckpt, &target, 3, NewBlocks::Fresh);
    assert!(identity.function_preserving && !fresh.function_preserving, "{}", fresh.table());
    let row = |p: &gpu_cnn::transfer::Plan| p.layers.iter().find(|l| l.target == "batch_normalization_5").unwrap().action;
    assert_eq!((row(&identity), row(&fresh)), (Action::Identity, Action::FreshInit));
    let names: Vec<String> = target.params().iter().map(|p| p.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        let (a, b) = (&kept.params[i], &changed.params[i]);
        match name.as_str() {
            "batch_normalization_5.gamma" => assert!(a.iter().all(|&x| x == 0.0) && b.iter().all(|&x| x == 1.0), "{name}: {a:?} {b:?}"),
            _ => assert_eq!(a, b, "{name}"),
        }
    }
}

/// Net2Wider through skip connections: widening a conv widens every layer that writes into the
/// values an add ties to its output (conv2d_1 with conv2d_2, whose sums add_1 joins), all by one
/// replication map; the batchnorms and the add follow, and the layers reading them share their
/// inputs. The grown model computes the source's function in inference and training mode (a
/// replicated channel has its original's batch statistics), with a residual block too.
#[test]
fn widening_through_skip_connections_keeps_the_function() {
    use gpu_cnn::grow::Op;
    let (source, target, changes) = grown(RESIDUAL, &[Op::Widen("conv2d_1".into(), 2.0)]);
    assert_eq!(changes, ["widen conv2d_1: filters 5 -> 10, with conv2d_2 (tied to it by skip connections)"]);
    let filters = |m: &ModelSpec| m.layers.iter().filter_map(|l| l.kind.ops().units()).collect::<Vec<_>>();
    assert_eq!(filters(&target), [10, 10, 6, 3]);
    let p = plan(&source, &target, Strategy::Grow, false, 0);
    assert_eq!(actions(&p)[..5], [("conv2d_1", Action::Grown), ("batch_normalization_1", Action::Grown), ("conv2d_2", Action::Grown), ("batch_normalization_2", Action::Grown), ("add_1", Action::NoParameters)]);
    assert_eq!(actions(&p)[5], ("conv2d_3", Action::Grown), "its inputs are shared among replicas");
    assert_same_function("widened through add_1, inference mode", outputs_in(Pass::Evaluate, &source, &target, 0));
    assert_same_function("widened through add_1, training mode", outputs_in(Pass::Gradients, &source, &target, 0));
    // Widened and deepened at once: the new block takes the widened width.
    let ops = [Op::Widen("conv2d_2".into(), 1.6), Op::Deepen("add_1".into())];
    let (source, target, changes) = grown(RESIDUAL, &ops);
    assert!(changes[1].contains("residual block of 2 conv2d 8 filters"), "{changes:?}");
    assert_same_function("widened and deepened, training mode", outputs_in(Pass::Gradients, &source, &target, 3));
}

#[test]
fn growth_operators_refuse_what_they_cannot_do() {
    use gpu_cnn::grow::{grow, Op};
    let source = gpu_cnn::config::Config::parse(std::path::Path::new("g.toml"), GROWABLE).unwrap().model;
    let err = |op: Op| grow(GROWABLE, &source, &[op]).err().expect("refused").to_string();
    assert!(err(Op::Deepen("conv2d_3".into())).contains("no layer `conv2d_3` in the model; did you mean `conv2d_1`?"));
    assert!(err(Op::Widen("dense_2".into(), 2.0)).contains("the output layer's units are the classes"));
    assert!(err(Op::Widen("flatten_1".into(), 2.0)).contains("only conv2d filters and dense units widen"));
    assert!(err(Op::Deepen("dense_1".into())).contains("where the activation is an image"));
    assert!(err(Op::AddBatchnorm("max_pooling2d_1".into())).contains("after a hidden conv2d or dense layer"));
    assert_eq!(gpu_cnn::grow::parse_widen("conv2d_1=1").unwrap_err(), "`conv2d_1=1`: the factor must be a number above 1");
}

/// Growth inside a run carries Adam's state: moments of copied tensors unchanged, of a widened
/// layer's replicated units copied with them, of the weights shared after them times the share
/// (m) and its square (v), zero for an inserted identity layer; the step count kept.
#[test]
fn grown_optimizer_state_follows_the_weights() {
    use gpu_cnn::checkpoint::{Checkpoint, Optimizer};
    let source = spec([6, 5, 3], vec![conv(2), pool(), flat(), dense(3), head(2)]);
    let target = spec([6, 5, 3], vec![conv(2), conv(2), pool(), flat(), dense(5), head(2)]);
    let trainable = |m: &ModelSpec| m.params().into_iter().filter(|p| p.trainable).collect::<Vec<_>>();
    // Distinct values everywhere, so that every copy and share can be traced.
    let fill = |m: &ModelSpec, k: f32| m.params().iter().enumerate().map(|(i, p)| (0..p.len()).map(|j| k + (i * 100 + j as usize) as f32 * 1e-3).collect::<Vec<f32>>()).collect::<Vec<_>>();
    let (m, v) = (fill(&source, 1.0), fill(&source, 2.0));
    let ckpt = Checkpoint {
        model: source.clone(),
        classes: vec!["a".into(), "b".into()],
        params: fill(&source, 0.5),
        optimizer: Some(Optimizer { config: Default::default(), t: 17, m, v }),
        state: Default::default(),
        provenance: None,
    };
    let (plan, grown) = gpu_cnn::transfer::grow_checkpoint(&ckpt, &target, 3, Default::default());
    println!("{}", plan.table());
    let opt = grown.optimizer.as_ref().unwrap();
    let (src, old) = (ckpt.optimizer.as_ref().unwrap(), trainable(&source));
    assert_eq!(opt.t, 17);
    let names: Vec<String> = trainable(&target).iter().map(|p| p.name.clone()).collect();
    let at = |n: &str| names.iter().position(|x| x == n).unwrap();
    let old_at = |n: &str| old.iter().position(|p| p.name == n).unwrap();
    // conv2d_1 is copied; conv2d_2 is inserted as the identity: zero moments.
    assert_eq!(opt.m[at("conv2d_1.kernel")], src.m[old_at("conv2d_1.kernel")]);
    assert_eq!(opt.v[at("conv2d_1.bias")], src.v[old_at("conv2d_1.bias")]);
    assert!(opt.m[at("conv2d_2.kernel")].iter().chain(&opt.v[at("conv2d_2.kernel")]).all(|&x| x == 0.0));
    // dense_1 widened 3 -> 5 units: each unit's bias moments are its source unit's.
    let units: Vec<usize> = (0..5).map(|o| src.m[old_at("dense_1.bias")].iter().position(|&x| x == opt.m[at("dense_1.bias")][o]).expect("a source unit's moment")).collect();
    assert_eq!(&units[..3], &[0, 1, 2], "the first units are the source's own");
    // dense_2's rows follow dense_1's units, shared among replicas: by the weights' own share.
    let (w_old, w_new) = (&ckpt.params[source.params().iter().position(|p| p.name == "dense_2.kernel").unwrap()], &grown.params[target.params().iter().position(|p| p.name == "dense_2.kernel").unwrap()]);
    let (m_old, m_new) = (&src.m[old_at("dense_2.kernel")], &opt.m[at("dense_2.kernel")]);
    let (v_old, v_new) = (&src.v[old_at("dense_2.kernel")], &opt.v[at("dense_2.kernel")]);
    for (row, &u) in units.iter().enumerate() {
        let share = w_new[row] / w_old[u];
        assert!((m_new[row] - m_old[u] * share).abs() < 1e-6 && (v_new[row] - v_old[u] * share * share).abs() < 1e-6, "row {row} (unit {u}, share {share})");
    }
    assert!(units.iter().enumerate().any(|(row, &u)| (w_new[row] / w_old[u] - 1.0).abs() > 1e-3), "some rows are shared");
}

#[test]
fn a_growth_plan_is_checked_when_the_config_loads() {
    let parse = |plan: &str| gpu_cnn::config::Config::parse(std::path::Path::new("g.toml"), &format!("{GROWABLE}[train]\nepochs = 4\n{plan}")).map(|c| c.growth.len()).map_err(|e| e.to_string());
    assert_eq!(parse("[[grow]]\nafter_epoch = 1\ndeepen = [\"max_pooling2d_1\"]\n[[grow]]\nafter_epoch = 2\nwiden = [\"conv2d_3=2\"]\n"), Ok(2), "names as the model stands after the first growth");
    let err = parse("[[grow]]\nafter_epoch = 4\ndeepen = [\"max_pooling2d_1\"]\n").unwrap_err();
    assert!(err.contains("g.toml: field `grow[0]`") && err.contains("before the run's last (4)"), "{err}");
    let err = parse("[[grow]]\nafter_epoch = 1\ndeepen = [\"conv2d_9\"]\n").unwrap_err();
    assert!(err.contains("field `grow[0]`") && err.contains("no layer `conv2d_9`"), "{err}");
    let err = parse("[[grow]]\nafter_epoch = 1\n").unwrap_err();
    assert!(err.contains("no operator"), "{err}");
    let err = parse("[[grow]]\nafter_epoch = 1\ndeepen = [\"max_pooling2d_1\"]\nfreeze = true\n").unwrap_err();
    assert!(err.contains("unknown field `freeze`"), "{err}");
    // A set epoch after a growth whose epoch the run decides cannot be kept.
    let err = parse("[[grow]]\non_plateau = { min_delta = 0.01 }\ndeepen = [\"max_pooling2d_1\"]\n[[grow]]\nafter_epoch = 3\nwiden = [\"conv2d_3=2\"]\n").unwrap_err();
    assert!(err.contains("field `grow[1]`") && err.contains("cannot follow one on a plateau"), "{err}");
    assert_eq!(parse("[[grow]]\nat_fraction = 0.5\ndeepen = [\"max_pooling2d_1\"]\n[[grow]]\non_plateau = { patience = 1, min_delta = 0.01 }\nwiden = [\"conv2d_3=2\"]\n"), Ok(2));
}
