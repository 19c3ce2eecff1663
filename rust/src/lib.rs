//! ferrotorch's Rust core: strided tensors, kernels, and (later) the autograd tape, exposed to
//! Python as `ferrotorch._C`.

// The library is named `_C` because that is the Python module's name (`ferrotorch._C`).
#![allow(non_snake_case)]

pub mod alloc;
pub mod autocast;
pub mod backprop;
pub mod device;
pub mod dtype;
pub mod error;
pub mod io;
pub mod kernels;
pub mod layout;
pub mod op;
pub mod py;
pub mod random;
pub mod shape;
pub mod storage;
pub mod strided_index;
pub mod tensor;

pub use dtype::DType;
pub use error::{Error, Result};
pub use tensor::Tensor;
