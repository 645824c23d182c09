//! The command-line tools around the daemon: the demo (the daemon on a built-in config with
//! an embedded broker), the bench, the subscriber (`sub`) and the viewer's server. They belong
//! to the binary: the daemon library (`smplcast`) depends on none of them.

pub mod bench;
pub mod broker;
pub mod console;
pub mod demo;
pub mod sub;
pub mod view;
