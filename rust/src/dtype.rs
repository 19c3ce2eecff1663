//! Element types and torch's type-promotion rules.

use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor. The order of categories matters for promotion:
/// bool < integers < floating point.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DType {
    Bool,
    U8,
    I32,
    I64,
    F16,
    BF16,
    F32,
    F64,
}

impl DType {
    pub const ALL: [DType; 8] = [
        DType::Bool,
        DType::U8,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];

    /// torch's name without the `torch.` prefix.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// The C++ scalar name torch uses in "not implemented for 'Float'" messages.
    pub fn scalar_name(self) -> &'static str {
        match self {
            DType::Bool => "Bool",
            DType::U8 => "Byte",
            DType::I32 => "Int",
            DType::I64 => "Long",
            DType::F16 => "Half",
            DType::BF16 => "BFloat16",
            DType::F32 => "Float",
            DType::F64 => "Double",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::Bool | DType::U8 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::U8 | DType::I32 | DType::I64)
    }

    pub fn is_signed(self) -> bool {
        !matches!(self, DType::Bool | DType::U8)
    }

    /// The type both operands are converted to in a binary op (torch.promote_types).
    pub fn promote(self, other: DType) -> DType {
        use DType::*;
        if self == other {
            return self;
        }
        match (self.is_float(), other.is_float()) {
            (true, true) => match (self, other) {
                (F16, BF16) | (BF16, F16) => F32,
                _ => {
                    if self.rank() > other.rank() {
                        self
                    } else {
                        other
                    }
                }
            },
            (true, false) => self,
            (false, true) => other,
            (false, false) => {
                if self.rank() > other.rank() {
                    self
                } else {
                    other
                }
            }
        }
    }

    fn rank(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.scalar_name())
    }
}

/// How an operand takes part in type promotion (torch's `result_type`): tensors with dimensions
/// decide the type; zero-dim tensors and Python scalars can only raise its *category*
/// (bool → integer → float), never its width within a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Dimensioned(DType),
    ZeroDim(DType),
    /// A Python number; its dtype is int64 for int, the default float dtype for float, bool for bool.
    Scalar(DType),
}

/// torch's `result_type` over any number of operands.
pub fn result_type(operands: &[Operand]) -> DType {
    let mut dim: Option<DType> = None;
    let mut zero: Option<DType> = None;
    let mut wrapped: Option<DType> = None;
    let up = |slot: &mut Option<DType>, d: DType| {
        *slot = Some(match *slot {
            None => d,
            Some(s) => s.promote(d),
        })
    };
    for op in operands {
        match *op {
            Operand::Dimensioned(d) => up(&mut dim, d),
            Operand::ZeroDim(d) => up(&mut zero, d),
            Operand::Scalar(d) => up(&mut wrapped, d),
        }
    }
    let inner = combine_categories(zero, wrapped);
    combine_categories(dim, inner).unwrap_or(DType::F32)
}

fn combine_categories(higher: Option<DType>, lower: Option<DType>) -> Option<DType> {
    match (higher, lower) {
        (None, l) => l,
        (h, None) => h,
        (Some(h), Some(l)) => {
            if h.is_float() {
                Some(h)
            } else if h == DType::Bool || l.is_float() {
                Some(h.promote(l))
            } else {
                Some(h)
            }
        }
    }
}

/// The Rust types that can be tensor elements, with the conversions kernels need.
pub trait Elem: Copy + Send + Sync + PartialOrd + Default + fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn is_nonzero(self) -> bool {
        self.to_f64() != 0.0
    }
    fn zero() -> Self {
        Self::from_i64(0)
    }
    fn one() -> Self {
        Self::from_i64(1)
    }
}

macro_rules! int_elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                // C-style conversion as torch does: truncate toward zero, wrap out of range.
                if v.is_finite() {
                    (v.trunc() as i128) as $t
                } else {
                    v as $t
                }
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn is_nonzero(self) -> bool {
                self != 0
            }
        }
    };
}
int_elem!(u8, DType::U8);
int_elem!(i32, DType::I32);
int_elem!(i64, DType::I64);

macro_rules! float_elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}
float_elem!(f32, DType::F32);
float_elem!(f64, DType::F64);

macro_rules! half_elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            fn to_i64(self) -> i64 {
                <$t>::to_f64(self) as i64
            }
            fn from_i64(v: i64) -> Self {
                <$t>::from_f64(v as f64)
            }
        }
    };
}
half_elem!(f16, DType::F16);
half_elem!(bf16, DType::BF16);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn is_nonzero(self) -> bool {
        self
    }
}

/// Runs `$body` with `$T` bound to the Rust element type of `$dtype`.
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident, $body:expr) => {
        match $dtype {
            $crate::dtype::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::dtype::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::dtype::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::dtype::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::dtype::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::dtype::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            $crate::dtype::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::dtype::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

/// `with_dtype!` for kernels that exist in f32 and f64 only: `$T` is f64 for F64 and f32
/// otherwise (callers have checked the dtype is one of the two).
#[macro_export]
macro_rules! with_f32_or_f64 {
    ($dtype:expr, $T:ident, $body:expr) => {
        match $dtype {
            $crate::dtype::DType::F64 => {
                type $T = f64;
                $body
            }
            _ => {
                type $T = f32;
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;

    #[test]
    fn promotion_table() {
        assert_eq!(Bool.promote(U8), U8);
        assert_eq!(U8.promote(I64), I64);
        assert_eq!(I64.promote(F16), F16);
        assert_eq!(F16.promote(BF16), F32);
        assert_eq!(F32.promote(F64), F64);
        assert_eq!(I32.promote(I64), I64);
    }

    #[test]
    fn scalars_only_raise_the_category() {
        use Operand::*;
        assert_eq!(result_type(&[Dimensioned(I64), Scalar(F32)]), F32);
        assert_eq!(result_type(&[Dimensioned(F16), Scalar(F32)]), F16);
        assert_eq!(result_type(&[Dimensioned(I32), Scalar(I64)]), I32);
        assert_eq!(result_type(&[Dimensioned(Bool), Scalar(I64)]), I64);
        assert_eq!(result_type(&[Dimensioned(F32), ZeroDim(F64)]), F32);
        assert_eq!(result_type(&[Dimensioned(I64), ZeroDim(F64)]), F64);
        assert_eq!(result_type(&[ZeroDim(I32), Scalar(F32)]), F32);
        assert_eq!(result_type(&[ZeroDim(F64), ZeroDim(F32)]), F64);
    }
}
