//! Loads a model directory and prints what smplcast sees in it (or the load error):
//! `cargo run --release --example model_info -- models/fixtures/narrow`
use std::path::PathBuf;

use smplcast::model::{Backbone, Streaming, TemporalHead};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("models/fixtures/narrow".into()));
    for file in ["backbone.onnx", "backbone.int8.onnx"] {
        match Backbone::load(&dir.join(file), 1) {
            Ok(b) => println!("{file}: {} backbone, feature {}", b.precision(), b.feature_len()),
            Err(e) => println!("error: {e}"),
        }
    }
    match TemporalHead::load(&dir.join("temporal.onnx"), 1) {
        Ok(h) => println!("temporal.onnx: {} head, feature {}", h.precision(), h.feature_len()),
        Err(e) => println!("error: {e}"),
    }
    match Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1) {
        Ok(s) => println!("streaming head: {:?}", s.dims()),
        Err(e) => println!("error: {e}"),
    }
}
