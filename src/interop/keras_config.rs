//! `gpu-cnn import keras` without `--config`: the model a Keras file describes (a `.keras`
//! archive's config.json, the model_config of a `model.save` .h5) as a gpu-cnn config's
//! `[model]` table. Layers keep their Keras names, so the weights pair with them by name. An
//! activation layer (`Activation`, `ReLU`, `LeakyReLU`, `ELU`) is fused into the layer it reads
//! where that layer has an activation of its own, left linear, and nothing else reads it (as the
//! shipped configs write Keras' `BatchNormalization` + `Activation("relu")`); elsewhere it is an
//! `activation` layer.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use toml_edit::{Array, InlineTable};

use super::keras::{activation_layer, inbound, size_pair, KerasError, KerasFile};
use crate::model::graph::MODEL_INPUT;

/// The Keras classes gpu-cnn lays out.
const CLASSES: &str = "Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Dropout, Add, Activation, ReLU, LeakyReLU and ELU";

/// The gpu-cnn kinds that carry an activation of their own.
const ACTIVATED: [&str; 6] = ["conv2d", "depthwise_conv2d", "separable_conv2d", "dense", "batchnorm", "add"];

/// The config text of the model `file` (read from `path`) describes.
pub fn config_text(path: &Path, file: &KerasFile) -> Result<String, KerasError> {
    let model = file.model.as_ref().ok_or_else(|| KerasError::NoModel(path.to_path_buf()))?;
    let table = model_table(model).map_err(|e| KerasError::Format(path.to_path_buf(), e))?;
    Ok(format!(
        "# The model saved in {} ({}), laid out by `gpu-cnn import keras`.\n# Layers keep their Keras names; activation layers are fused into the layer they read where it\n# can hold them.\n{table}",
        path.display(),
        file.format.describe()
    ))
}

/// The `[model]` table (input and layers, one inline table a line) of a Keras model config, or
/// what in it gpu-cnn cannot express.
pub fn model_table(model: &Value) -> Result<String, String> {
    // Keras 2's early Sequential configs are the list of layers itself.
    let layers = model["config"]["layers"].as_array().or(model["config"].as_array()).ok_or("its model config lists no layers")?;
    let name = |l: &Value| l["config"]["name"].as_str().or(l["name"].as_str()).unwrap_or_default().to_string();
    let functional = layers.iter().any(|l| l.get("inbound_nodes").is_some());
    // What each layer reads: its inbound nodes, or in a Sequential model the layer before.
    let reads: Vec<Vec<String>> = (0..layers.len())
        .map(|i| match functional {
            true => inbound(&layers[i]["inbound_nodes"]),
            false => i.checked_sub(1).map(|p| vec![name(&layers[p])]).unwrap_or_default(),
        })
        .collect();
    let readers = |n: &str| reads.iter().filter(|r| r.iter().any(|x| x == n)).count();
    let mut input = None;
    // The gpu-cnn value each Keras output is: the model's input, or the layer a fused
    // activation went into.
    let mut value: HashMap<String, String> = HashMap::new();
    let mut out: Vec<(String, InlineTable, Vec<String>)> = Vec::new();
    for (l, reads) in layers.iter().zip(&reads) {
        let (class, c, n) = (l["class_name"].as_str().unwrap_or_default(), &l["config"], name(l));
        let fail = |e: String| format!("Keras layer '{n}' ({class}): {e}");
        if let Some(shape) = c.get("batch_shape").or(c.get("batch_input_shape")).filter(|s| !s.is_null()) {
            input.get_or_insert(input_shape(shape).map_err(fail)?);
        }
        if class == "InputLayer" {
            if value.values().any(|v| v == MODEL_INPUT) {
                return Err(fail("a second input: gpu-cnn models take one image input".into()));
            }
            value.insert(n, MODEL_INPUT.into());
            continue;
        }
        let inputs: Vec<String> = reads.iter().map(|r| value.get(r).cloned().unwrap_or_else(|| r.clone())).collect();
        if let Some(activation) = activation_layer(class, c) {
            let activation = fusable(class, c, activation).map_err(fail)?;
            let producer = match inputs.as_slice() {
                [p] if readers(&reads[0]) == 1 => out.iter_mut().find(|(name, t, _)| name == p && ACTIVATED.contains(&t["type"].as_str().unwrap_or_default()) && t.get("activation").is_none_or(|a| a.as_str() == Some("linear"))),
                _ => None,
            };
            if let Some((p, table, _)) = producer {
                table.insert("activation", activation.into());
                value.insert(n, p.clone());
                continue;
            }
            let mut table = kind("activation");
            table.insert("activation", activation.into());
            out.push((n, table, inputs));
            continue;
        }
        out.push((n.clone(), layer_table(class, c).map_err(fail)?, inputs));
    }
    let input = input.ok_or("its model config gives no input shape (no InputLayer, no batch_input_shape)")?;
    let mut text = format!("[model]\ninput = [{}, {}, {}]\nlayers = [\n", input[0], input[1], input[2]);
    for (i, (n, table, inputs)) in out.iter().enumerate() {
        let mut line = InlineTable::new();
        line.insert("type", table["type"].clone());
        line.insert("name", n.as_str().into());
        for (k, v) in table.iter().filter(|(k, _)| *k != "type") {
            line.insert(k, v.clone());
        }
        // The layer listed before is what a layer reads unless it names others.
        let before = if i == 0 { MODEL_INPUT } else { out[i - 1].0.as_str() };
        if !(inputs.is_empty() || *inputs == [before]) {
            line.insert("inputs", inputs.iter().collect::<Array>().into());
        }
        text.push_str(&format!("  {line},\n"));
    }
    text.push_str("]\n");
    Ok(text)
}

/// `[None, height, width, channels]`.
fn input_shape(shape: &Value) -> Result<[u64; 3], String> {
    match shape.as_array().map(|a| a.iter().map(Value::as_u64).collect::<Vec<_>>()).as_deref() {
        Some([_, Some(h), Some(w), Some(c)]) => Ok([*h, *w, *c]),
        _ => Err(format!("input shape {shape}: gpu-cnn takes images of a fixed [height, width, channels]")),
    }
}

/// An activation layer's activation as gpu-cnn names it, or why gpu-cnn has not that one.
fn fusable(class: &str, c: &Value, activation: String) -> Result<String, String> {
    if activation.contains(" (") {
        return Err(format!("{activation}: gpu-cnn's leaky_relu has negative_slope 0.2 (Keras 3's leaky_relu activation), its elu alpha 1"));
    }
    let plain_relu = |k: &str, v: f64| c[k].as_f64().is_none_or(|x| x == v);
    if class == "ReLU" && !(c["max_value"].is_null() && plain_relu("negative_slope", 0.0) && plain_relu("threshold", 0.0)) {
        return Err("a ReLU with max_value, negative_slope or threshold, which gpu-cnn's relu has not".into());
    }
    Ok(if activation == "swish" { "silu".into() } else { activation })
}

fn kind(tag: &str) -> InlineTable {
    let mut t = InlineTable::new();
    t.insert("type", tag.into());
    t
}

/// One gpu-cnn layer table from a Keras layer's class and config.
fn layer_table(class: &str, c: &Value) -> Result<InlineTable, String> {
    let number = |key: &str| c[key].as_u64().map(|v| v as i64).ok_or_else(|| format!("{key} {} is not a whole number", c[key]));
    // Keras writes sizes as [h, w]: one number where both are the same.
    let pair = |key: &str| -> Result<toml_edit::Value, String> {
        match size_pair(&c[key]) {
            Some([h, w]) if h == w => Ok((h as i64).into()),
            Some([h, w]) => Ok([h as i64, w as i64].into_iter().collect::<Array>().into()),
            None => Err(format!("{key} {} is not a size", c[key])),
        }
    };
    let stride = || match size_pair(&c["strides"]) {
        Some([h, w]) if h == w => Ok(toml_edit::Value::from(h as i64)),
        _ => Err(format!("strides {}: gpu-cnn's convs take the same stride both ways", c["strides"])),
    };
    let activation = || -> Result<toml_edit::Value, String> {
        match &c["activation"] {
            Value::Null => Ok("linear".into()),
            Value::String(a) if a == "swish" => Ok("silu".into()),
            Value::String(a) => Ok(a.as_str().into()),
            // Keras 3 writes a custom or parameterised activation as an object.
            other => Err(format!("activation {other}: gpu-cnn takes an activation by name")),
        }
    };
    let flag = |key: &str| c[key].as_bool().unwrap_or(true);
    let is = |key: &str, want: &Value| c.get(key).is_none_or(|v| v.is_null() || v == want || v == &serde_json::json!([want, want]));
    if !is("data_format", &"channels_last".into()) {
        return Err("data_format channels_first: gpu-cnn is channels_last".into());
    }
    if !is("dilation_rate", &1.into()) || !is("groups", &1.into()) {
        return Err(format!("dilation_rate {} / groups {}: gpu-cnn's convs are neither dilated nor grouped", c["dilation_rate"], c["groups"]));
    }
    let mut t;
    match class {
        "Conv2D" | "DepthwiseConv2D" | "SeparableConv2D" => {
            t = kind(match class {
                "Conv2D" => "conv2d",
                "DepthwiseConv2D" => "depthwise_conv2d",
                _ => "separable_conv2d",
            });
            if class != "DepthwiseConv2D" {
                t.insert("filters", number("filters")?.into());
            }
            t.insert("kernel", pair("kernel_size")?);
            t.insert("stride", stride()?);
            t.insert("padding", c["padding"].as_str().unwrap_or("valid").into());
            if class != "Conv2D" {
                t.insert("depth_multiplier", number("depth_multiplier")?.into());
            }
            t.insert("activation", activation()?);
            t.insert("use_bias", flag("use_bias").into());
        }
        "Dense" => {
            t = kind("dense");
            t.insert("units", number("units")?.into());
            t.insert("activation", activation()?);
            t.insert("use_bias", flag("use_bias").into());
        }
        "BatchNormalization" => {
            if !(is("axis", &(-1).into()) || is("axis", &3.into()) || c["axis"] == serde_json::json!([3])) {
                return Err(format!("axis {}: gpu-cnn normalises the channels (axis -1)", c["axis"]));
            }
            t = kind("batchnorm");
            for key in ["momentum", "epsilon"] {
                t.insert(key, c[key].as_f64().ok_or_else(|| format!("{key} {} is not a number", c[key]))?.into());
            }
            t.insert("center", flag("center").into());
            t.insert("scale", flag("scale").into());
        }
        "MaxPooling2D" | "AveragePooling2D" => {
            if c["padding"].as_str().is_some_and(|p| p != "valid") {
                return Err("padding same: gpu-cnn's pools are valid".into());
            }
            t = kind(if class == "MaxPooling2D" { "maxpool2d" } else { "avgpool2d" });
            let pool = pair("pool_size")?;
            // Keras' strides default to the pool size, as gpu-cnn's.
            let stride = if c["strides"].is_null() { pool.clone() } else { pair("strides")? };
            let differs = stride.to_string() != pool.to_string();
            t.insert("pool", pool);
            if differs {
                t.insert("stride", stride);
            }
        }
        "GlobalAveragePooling2D" | "GlobalMaxPooling2D" => {
            if c["keepdims"].as_bool() == Some(true) {
                return Err("keepdims true: gpu-cnn's global pools give a flat vector".into());
            }
            t = kind(if class == "GlobalMaxPooling2D" { "globalmaxpool2d" } else { "globalavgpool2d" });
        }
        "Flatten" => t = kind("flatten"),
        "Dropout" => {
            t = kind("dropout");
            t.insert("rate", c["rate"].as_f64().ok_or("rate is not a number")?.into());
        }
        "Add" => t = kind("add"),
        _ => return Err(format!("gpu-cnn has no layer of this class (it lays out {CLASSES}); pass --config with a gpu-cnn config of the model")),
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sequential(layers: Value) -> Value {
        json!({"class_name": "Sequential", "config": {"name": "s", "layers": layers}})
    }

    /// A Keras 2 Sequential config: the input from the first layer, kernel and pool sizes as one
    /// number, an Activation after a conv fused into it, one after a pool kept as a layer.
    #[test]
    fn a_sequential_config_becomes_the_model_table() {
        let model = sequential(json!([
            {"class_name": "Conv2D", "config": {"name": "conv2d_1", "batch_input_shape": [null, 32, 30, 3], "filters": 8, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "activation": "linear", "use_bias": true, "dilation_rate": [1, 1], "data_format": "channels_last"}},
            {"class_name": "Activation", "config": {"name": "activation_1", "activation": "relu"}},
            {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}},
            {"class_name": "Activation", "config": {"name": "activation_2", "activation": "tanh"}},
            {"class_name": "Flatten", "config": {"name": "flatten_1"}},
            {"class_name": "Dense", "config": {"name": "out", "units": 1, "activation": "sigmoid", "use_bias": true}},
        ]));
        let text = model_table(&model).unwrap();
        assert_eq!(text, concat!(
            "[model]\ninput = [32, 30, 3]\nlayers = [\n",
            "  { type = \"conv2d\", name = \"conv2d_1\", filters = 8, kernel = 3, stride = 1, padding = \"same\", activation = \"relu\", use_bias = true },\n",
            "  { type = \"maxpool2d\", name = \"pool\", pool = 2 },\n",
            "  { type = \"activation\", name = \"activation_2\", activation = \"tanh\" },\n",
            "  { type = \"flatten\", name = \"flatten_1\" },\n",
            "  { type = \"dense\", name = \"out\", units = 1, activation = \"sigmoid\", use_bias = true },\n",
            "]\n",
        ));
        let spec: crate::config::Config = crate::config::Config::parse(std::path::Path::new("k.toml"), &text).unwrap();
        assert_eq!(spec.model.layers.len(), 5);
    }

    /// A Functional model: the input layer is the model's input, an Add names both inputs, an
    /// activation whose producer has a second reader stays a layer, and a value renamed by a
    /// fused activation is read under its producer's name.
    #[test]
    fn a_functional_config_names_what_each_layer_reads() {
        let reads = |names: &[&str]| json!([{"args": [names.iter().map(|n| json!({"class_name": "__keras_tensor__", "config": {"keras_history": [n, 0, 0]}})).collect::<Vec<_>>()], "kwargs": {}}]);
        let layer = |class: &str, config: Value, from: &[&str]| json!({"class_name": class, "config": config, "inbound_nodes": reads(from)});
        let model = json!({"class_name": "Functional", "config": {"layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [null, 8, 8, 3]}, "inbound_nodes": []},
            layer("BatchNormalization", json!({"name": "bn", "axis": -1, "momentum": 0.9, "epsilon": 0.001, "center": true, "scale": true}), &["in"]),
            layer("ReLU", json!({"name": "r"}), &["bn"]),
            layer("Conv2D", json!({"name": "c", "filters": 3, "kernel_size": [1, 3], "strides": [1, 1], "padding": "same", "activation": "linear", "use_bias": false}), &["r"]),
            layer("Activation", json!({"name": "a", "activation": "swish"}), &["c"]),
            layer("Add", json!({"name": "add"}), &["a", "r"]),
            layer("Add", json!({"name": "add_1"}), &["add", "c"]),
            layer("GlobalAveragePooling2D", json!({"name": "g", "keepdims": false}), &["add_1"]),
            layer("Dense", json!({"name": "d", "units": 3, "activation": "softmax"}), &["g"]),
        ]}});
        let text = model_table(&model).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "input = [8, 8, 3]");
        assert_eq!(lines[3], "  { type = \"batchnorm\", name = \"bn\", momentum = 0.9, epsilon = 0.001, center = true, scale = true, activation = \"relu\" },");
        assert_eq!(lines[4], "  { type = \"conv2d\", name = \"c\", filters = 3, kernel = [1, 3], stride = 1, padding = \"same\", activation = \"linear\", use_bias = false },");
        assert_eq!(lines[5], "  { type = \"activation\", name = \"a\", activation = \"silu\" },", "c has two readers");
        assert_eq!(lines[6], "  { type = \"add\", name = \"add\", inputs = [\"a\", \"bn\"] },");
        assert_eq!(lines[7], "  { type = \"add\", name = \"add_1\", inputs = [\"add\", \"c\"] },");
        let cfg = crate::config::Config::parse(std::path::Path::new("k.toml"), &text).unwrap();
        assert_eq!(cfg.model.layers.len(), 7);
    }

    /// What gpu-cnn cannot express is named with its layer.
    #[test]
    fn layers_gpu_cnn_lacks_are_named() {
        let with = |layer: Value| model_table(&sequential(json!([{"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [null, 8, 8, 3]}}, layer]))).unwrap_err();
        let e = with(json!({"class_name": "Rescaling", "config": {"name": "scale"}}));
        assert!(e.starts_with("Keras layer 'scale' (Rescaling): gpu-cnn has no layer of this class"), "{e}");
        let e = with(json!({"class_name": "LeakyReLU", "config": {"name": "lr", "negative_slope": 0.3}}));
        assert!(e.contains("'lr' (LeakyReLU): leaky_relu (negative_slope 0.3): gpu-cnn's leaky_relu has negative_slope 0.2"), "{e}");
        let e = with(json!({"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [1, 2]}}));
        assert!(e.contains("strides [1,2]: gpu-cnn's convs take the same stride both ways"), "{e}");
        let e = with(json!({"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1], "dilation_rate": [2, 2]}}));
        assert!(e.contains("neither dilated nor grouped"), "{e}");
        let input = |name: &str| json!({"class_name": "InputLayer", "config": {"name": name, "batch_shape": [null, 8, 8, 3]}});
        let e = model_table(&sequential(json!([input("a"), input("b")]))).unwrap_err();
        assert!(e.starts_with("Keras layer 'b' (InputLayer): a second input"), "{e}");
        let e = model_table(&sequential(json!([{"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [null, null, null, 3]}}]))).unwrap_err();
        assert!(e.contains("fixed [height, width, channels]"), "{e}");
    }
}
