//! Compute kernels. They see slices and layouts, never the autograd graph.

pub mod attention;
pub mod copy;
pub mod elementwise;
pub mod fused;
pub mod matmul;
pub mod optim;
pub mod peak;
pub mod reduce;
pub mod sgemm;
pub mod vmath;
