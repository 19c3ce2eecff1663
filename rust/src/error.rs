//! One error type for the whole core. Each variant carries the data a user needs to fix the call
//! (shapes, dims, dtypes, the op); `py/errors.rs` maps each variant to torch's Python exception type.

use crate::dtype::DType;
use std::any::Any;
use std::sync::Arc;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two operands cannot be broadcast together.
    #[error("{op}: the size of tensor a ({a}) must match the size of tensor b ({b}) at non-singleton dimension {dim} (shapes {lhs:?} and {rhs:?})")]
    Broadcast {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        dim: usize,
        a: usize,
        b: usize,
    },
    /// A shape that does not fit what the op needs (the message says what was expected).
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A dimension index outside [-ndim, ndim).
    #[error("Dimension out of range (expected to be in range of [{min}, {max}], but got {dim})")]
    DimOutOfRange { dim: i64, min: i64, max: i64 },
    /// An element index outside the size of a dimension.
    #[error("index {index} is out of bounds for dimension {dim} with size {size}")]
    IndexOutOfRange { index: i64, dim: usize, size: usize },
    /// An op that does not support a dtype.
    #[error("\"{op}\" not implemented for '{dtype}'")]
    UnsupportedDType { op: &'static str, dtype: DType },
    /// Operands whose dtypes cannot be combined the way the op needs.
    #[error("{op}: {msg}")]
    DType { op: &'static str, msg: String },
    /// An op that torch does not implement for the operands (NotImplementedError, a subclass of
    /// RuntimeError).
    #[error("{0}")]
    NotImplemented(String),
    /// A bad argument value (torch raises RuntimeError for most of these).
    #[error("{0}")]
    Runtime(String),
    /// A bad argument value that torch reports as ValueError.
    #[error("{0}")]
    Value(String),
    /// A wrong argument type (TypeError in Python).
    #[error("{0}")]
    Type(String),
    /// An index error that is not a plain out-of-range element (IndexError in Python).
    #[error("{0}")]
    Index(String),
    /// An exception raised by user code the core called back (a hook, a custom Function),
    /// carried as it is so that the caller gets the original exception back.
    #[error("{msg}")]
    Foreign {
        msg: String,
        payload: Arc<dyn Any + Send + Sync>,
    },
    /// The allocator refused a buffer.
    #[error("{op}: cannot allocate {bytes} bytes for a tensor of shape {shape:?} and dtype {dtype}: out of memory")]
    OutOfMemory {
        op: &'static str,
        bytes: u128,
        shape: Vec<usize>,
        dtype: DType,
    },
}

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error::Runtime(msg.into())
    }
}
