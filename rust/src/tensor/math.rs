//! Elementwise math: unary ops, binary ops with broadcasting and torch's type promotion,
//! comparisons, `where`, `clamp`.

use super::{Scalar, Tensor};
use crate::device::{self, Value};
use crate::dtype::{result_type, DType, Elem, Operand};
use crate::error::{Error, Result};
use crate::kernels::elementwise::{map1, map2, map3, num_like::Float, Arith};
use crate::op::Op;
use crate::shape::broadcast_shapes;
use crate::with_dtype;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Pow,
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
    BitAnd,
    BitOr,
    BitXor,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            FloorDiv => "floor_divide",
            Rem => "remainder",
            Pow => "pow",
            Maximum => "maximum",
            Minimum => "minimum",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            LogicalAnd => "logical_and",
            LogicalOr => "logical_or",
            LogicalXor => "logical_xor",
            BitAnd => "bitwise_and",
            BitOr => "bitwise_or",
            BitXor => "bitwise_xor",
        }
    }
    fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }
    fn is_logical(self) -> bool {
        use BinaryOp::*;
        matches!(self, LogicalAnd | LogicalOr | LogicalXor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Exp,
    Log,
    Log1p,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    Gelu,
    GeluTanh,
    Silu,
    Floor,
    Ceil,
    Round,
    Trunc,
    Reciprocal,
    Erf,
    Erfinv,
    LogicalNot,
    BitNot,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Abs => "abs",
            Sign => "sign",
            Exp => "exp",
            Log => "log",
            Log1p => "log1p",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Sin => "sin",
            Cos => "cos",
            Tanh => "tanh",
            Sigmoid => "sigmoid",
            Relu => "relu",
            Gelu => "gelu",
            GeluTanh => "gelu",
            Silu => "silu",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Trunc => "trunc",
            Reciprocal => "reciprocal",
            Erf => "erf",
            Erfinv => "erfinv",
            LogicalNot => "logical_not",
            BitNot => "bitwise_not",
        }
    }

    /// Ops that keep integer dtypes (the rest compute in floating point).
    fn keeps_int(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Neg | Abs | Sign | Relu | Floor | Ceil | Round | Trunc | BitNot
        )
    }
}

/// An operand of a binary op: a tensor, and whether it came from a Python number (which only
/// takes part in type promotion by category).
#[derive(Clone, Copy)]
pub struct Arg<'a> {
    pub tensor: &'a Tensor,
    pub wrapped: bool,
}

impl<'a> Arg<'a> {
    pub fn tensor(t: &'a Tensor) -> Self {
        Arg {
            tensor: t,
            wrapped: false,
        }
    }
    /// How the torch backend receives this operand: a wrapped number as a Python number.
    pub fn value(&self) -> Value<'a> {
        if !self.wrapped {
            return Value::Tensor(self.tensor);
        }
        let t = self.tensor;
        let v = match t.dtype() {
            DType::Bool => Scalar::Bool(t.item_i64().unwrap_or(0) != 0),
            d if d.is_float() => Scalar::Float(t.item_f64().unwrap_or(f64::NAN)),
            _ => Scalar::Int(t.item_i64().unwrap_or(0)),
        };
        Value::Scalar(v)
    }
    pub fn operand(&self) -> Operand {
        let d = self.tensor.dtype();
        if self.wrapped {
            // A Python float takes the default dtype in promotion whatever we store it as.
            Operand::Scalar(if d.is_float() { DType::F32 } else { d })
        } else if self.tensor.dims() == 0 {
            Operand::ZeroDim(d)
        } else {
            Operand::Dimensioned(d)
        }
    }
}

/// A Python number as a wrapped rank-0 tensor (floats kept in f64 like torch's wrapped numbers).
pub fn wrap_scalar(s: Scalar) -> Tensor {
    let dtype = match s {
        Scalar::Float(_) => DType::F64,
        other => other.dtype(),
    };
    Tensor::scalar(s, dtype)
}

impl Tensor {
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let out = crate::op::no_grad(|| self.unary_impl(op))?;
        if matches!(op, UnaryOp::LogicalNot | UnaryOp::BitNot) {
            return Ok(out);
        }
        let saved = out.detach();
        Ok(out.record(&[self], || Op::Unary {
            op,
            x: self.clone(),
            out: saved,
        }))
    }

    fn unary_impl(&self, op: UnaryOp) -> Result<Tensor> {
        use UnaryOp::*;
        if let Some(dev) = device::op_device(op.name(), &[self])? {
            let args = [
                Value::Str(op.name()),
                Value::Tensor(self),
                Value::Bool(op == GeluTanh),
            ];
            return device::call1("unary", dev, &args);
        }
        let dt = self.dtype();
        crate::storage::check_alloc(op.name(), self.shape(), DType::F64)?;
        match op {
            LogicalNot => return self.map_bool(|b| !b),
            BitNot => {
                if dt.is_float() {
                    return Err(Error::UnsupportedDType {
                        op: "bitwise_not_cpu",
                        dtype: dt,
                    });
                }
                if dt == DType::Bool {
                    return self.map_bool(|b| !b);
                }
                return with_int(dt, "bitwise_not", |t| t.clone(), self, |x: i64| !x);
            }
            Neg if dt == DType::Bool => {
                return Err(Error::NotImplemented(
                    "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.".into(),
                ))
            }
            Relu if dt == DType::Bool => {
                return Err(Error::NotImplemented(
                    "Boolean inputs not supported for relu".into(),
                ))
            }
            Abs | Floor | Ceil | Round | Trunc if dt == DType::Bool => {
                return Err(Error::UnsupportedDType {
                    op: op.name(),
                    dtype: dt,
                })
            }
            Gelu | GeluTanh | Silu if !dt.is_float() => {
                return Err(Error::UnsupportedDType {
                    op: op.name(),
                    dtype: dt,
                })
            }
            _ => {}
        }
        if !dt.is_float() && op.keeps_int() {
            if matches!(op, Floor | Ceil | Round | Trunc) {
                return Ok(self.deep_copy());
            }
            if dt == DType::Bool {
                return match op {
                    Abs | Relu | Sign => Ok(self.deep_copy()),
                    _ => Err(Error::UnsupportedDType {
                        op: op.name(),
                        dtype: dt,
                    }),
                };
            }
            return with_dtype!(dt, T, int_unary::<T>(self, op));
        }
        let out_dt = if dt.is_float() { dt } else { DType::F32 };
        let x = self.to_dtype(out_dt);
        match out_dt {
            DType::F64 => float_unary::<f64>(&x, op),
            DType::F32 => float_unary::<f32>(&x, op),
            _ => Ok(float_unary::<f32>(&x.to_dtype(DType::F32), op)?.to_dtype(out_dt)),
        }
    }

    /// torch computes `x ** e` for these scalar exponents with the matching cheaper op, which
    /// also fixes edge cases (`(-inf) ** 0.5` is sqrt(-inf) = nan, not pow's inf).
    fn pow_special(&self, e: f64, compute: DType) -> Result<Option<Tensor>> {
        use UnaryOp::*;
        let x = self.to_dtype(compute);
        let sq = || x.binary_t(BinaryOp::Mul, &x);
        Ok(Some(match e {
            0.5 => x.unary(Sqrt)?,
            -0.5 => x.unary(Rsqrt)?,
            -1.0 => x.unary(Reciprocal)?,
            2.0 => sq()?,
            3.0 => sq()?.binary_t(BinaryOp::Mul, &x)?,
            -2.0 => sq()?.unary(Reciprocal)?,
            _ => return Ok(None),
        }))
    }

    fn map_bool(&self, f: impl Fn(bool) -> bool + Sync) -> Result<Tensor> {
        let v = with_dtype!(self.dtype(), T, {
            map1((self.storage().as_slice::<T>(), self.layout()), |x: T| {
                f(x.is_nonzero())
            })
        });
        Tensor::from_vec(v, self.shape())
    }

    /// A binary op on a tensor and another operand (tensor or wrapped scalar).
    pub fn binary(op: BinaryOp, lhs: Arg, rhs: Arg) -> Result<Tensor> {
        use BinaryOp::*;
        let out = crate::op::no_grad(|| Tensor::binary_impl(op, lhs, rhs))?;
        if !matches!(op, Add | Sub | Mul | Div | Pow | Maximum | Minimum | Rem) {
            return Ok(out);
        }
        let saved = out.detach();
        Ok(out.record(&[lhs.tensor, rhs.tensor], || Op::Binary {
            op,
            lhs: lhs.tensor.clone(),
            rhs: rhs.tensor.clone(),
            out: saved,
        }))
    }

    fn binary_impl(op: BinaryOp, lhs: Arg, rhs: Arg) -> Result<Tensor> {
        use BinaryOp::*;
        let (a, b) = (lhs.tensor, rhs.tensor);
        if let Some(dev) = device::op_device(op.name(), &[a, b])? {
            let args = [Value::Str(op.name()), lhs.value(), rhs.value()];
            return device::call1("binary", dev, &args);
        }
        let shape = broadcast_shapes(op.name(), a.shape(), b.shape())?;
        crate::storage::check_alloc(op.name(), &shape, DType::F64)?;
        let promoted = result_type(&[lhs.operand(), rhs.operand()]);
        if op.is_logical() {
            let la = a.to_dtype(DType::Bool).broadcast_as(&shape)?;
            let lb = b.to_dtype(DType::Bool).broadcast_as(&shape)?;
            let (sa, sb) = (
                la.storage().as_slice::<bool>(),
                lb.storage().as_slice::<bool>(),
            );
            let v = map2(
                (sa, la.layout()),
                (sb, lb.layout()),
                |x: bool, y: bool| match op {
                    LogicalAnd => x && y,
                    LogicalOr => x || y,
                    _ => x != y,
                },
            );
            return Tensor::from_vec(v, &shape);
        }
        // Dtype the kernel computes in.
        let compute = match op {
            Div if !promoted.is_float() => DType::F32,
            _ => promoted,
        };
        if op == Sub && (a.dtype() == DType::Bool || b.dtype() == DType::Bool) {
            return Err(Error::NotImplemented(if compute == DType::Bool {
                "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or `logical_xor()` operator instead.".into()
            } else {
                "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.".into()
            }));
        }
        if op == FloorDiv && compute == DType::Bool {
            return Err(Error::UnsupportedDType {
                op: "div_floor_cpu",
                dtype: compute,
            });
        }
        if op == Pow && !compute.is_float() && rhs.wrapped && b.item_f64()? < 0.0 {
            return Err(Error::runtime(
                "Integers to negative integer powers are not allowed.",
            ));
        }
        if matches!(op, BitAnd | BitOr | BitXor) && compute.is_float() {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: compute,
            });
        }
        if op == Rem && compute == DType::Bool {
            return Err(Error::UnsupportedDType {
                op: "remainder_cpu",
                dtype: compute,
            });
        }
        // An empty result divides nothing, so a zero divisor is no error there.
        if matches!(op, FloorDiv | Rem)
            && !compute.is_float()
            && compute != DType::Bool
            && crate::shape::elem_count(&shape) > 0
        {
            let zero = with_dtype!(b.dtype(), B, {
                map1((b.storage().as_slice::<B>(), b.layout()), |x: B| {
                    !x.is_nonzero()
                })
            });
            if zero.iter().any(|&z| z) {
                return Err(Error::runtime("ZeroDivisionError"));
            }
        }
        if op == Pow && rhs.wrapped && compute.is_float() {
            if let Some(out) = a.pow_special(b.item_f64()?, compute)? {
                return Ok(out);
            }
        }
        // Half types compute in f32 and round the result back.
        let kernel_dt = match compute {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        };
        // Operands are rounded to the compute dtype first (as torch does): a float32 scalar
        // meeting a float16 tensor computes with the scalar's float16 value.
        let (a, b) = if kernel_dt != compute {
            (&a.to_dtype(compute), &b.to_dtype(compute))
        } else {
            (a, b)
        };
        let ta = a.to_dtype(kernel_dt).broadcast_as(&shape)?;
        let tb = b.to_dtype(kernel_dt).broadcast_as(&shape)?;
        let out = if op.is_comparison() {
            with_dtype!(kernel_dt, T, compare::<T>(op, &ta, &tb, &shape)?)
        } else {
            match kernel_dt {
                DType::F32 => arith::<f32>(op, &ta, &tb, &shape)?,
                DType::F64 => arith::<f64>(op, &ta, &tb, &shape)?,
                DType::I64 => arith::<i64>(op, &ta, &tb, &shape)?,
                DType::I32 => arith::<i32>(op, &ta, &tb, &shape)?,
                DType::U8 => arith::<u8>(op, &ta, &tb, &shape)?,
                DType::Bool => bool_arith(op, &ta, &tb, &shape)?,
                _ => unreachable!("half types compute in f32"),
            }
        };
        if !op.is_comparison() && out.dtype() != compute {
            return Ok(out.to_dtype(compute));
        }
        Ok(out)
    }

    /// Shorthand for tensor-tensor binary ops.
    pub fn binary_t(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        Tensor::binary(op, Arg::tensor(self), Arg::tensor(rhs))
    }

    /// Shorthand for tensor-scalar binary ops.
    pub fn binary_s(&self, op: BinaryOp, rhs: Scalar) -> Result<Tensor> {
        let s = wrap_scalar(rhs);
        Tensor::binary(
            op,
            Arg::tensor(self),
            Arg {
                tensor: &s,
                wrapped: true,
            },
        )
    }

    /// `where(cond, self, other)`: picks from self where cond is true.
    pub fn where_(cond: &Tensor, a: Arg, b: Arg) -> Result<Tensor> {
        let out = crate::op::no_grad(|| Tensor::where_impl(cond, a, b))?;
        Ok(out.record(&[a.tensor, b.tensor], || Op::Where {
            cond: cond.clone(),
            a: a.tensor.clone(),
            b: b.tensor.clone(),
        }))
    }

    fn where_impl(cond: &Tensor, a: Arg, b: Arg) -> Result<Tensor> {
        if let Some(dev) = device::op_device("where", &[cond, a.tensor, b.tensor])? {
            return device::call1("where", dev, &[Value::Tensor(cond), a.value(), b.value()]);
        }
        let s1 = broadcast_shapes("where", cond.shape(), a.tensor.shape())?;
        let shape = broadcast_shapes("where", &s1, b.tensor.shape())?;
        crate::storage::check_alloc("where", &shape, DType::F64)?;
        let dt = result_type(&[a.operand(), b.operand()]);
        let c = cond.broadcast_as(&shape)?;
        if cond.dtype() != DType::Bool {
            return Err(Error::runtime(format!(
                "where expected condition to be a boolean tensor, but got a tensor with dtype {}",
                cond.dtype()
            )));
        }
        let ta = a.tensor.to_dtype(dt).broadcast_as(&shape)?;
        let tb = b.tensor.to_dtype(dt).broadcast_as(&shape)?;
        with_dtype!(dt, T, {
            let v = map3(
                (c.storage().as_slice::<bool>(), c.layout()),
                (ta.storage().as_slice::<T>(), ta.layout()),
                (tb.storage().as_slice::<T>(), tb.layout()),
                |c: bool, x: T, y: T| if c { x } else { y },
            );
            Tensor::from_vec(v, &shape)
        })
    }

    /// `clamp(min, max)`; either bound may be absent. NaN inputs stay NaN.
    pub fn clamp(&self, min: Option<Arg>, max: Option<Arg>) -> Result<Tensor> {
        if min.is_none() && max.is_none() {
            return Err(Error::runtime(
                "torch.clamp: At least one of 'min' or 'max' must not be None",
            ));
        }
        let number_bounds = [min, max].iter().flatten().all(|b| b.wrapped);
        if crate::op::is_grad_enabled() && self.requires_grad() && number_bounds {
            // torch's gradient for number bounds passes strictly inside (min < x < max); tensor
            // bounds behave like maximum/minimum (ties split in half), the path below.
            let (out, inside) = crate::op::no_grad(|| -> Result<(Tensor, Tensor)> {
                let out = self.clamp(min, max)?;
                let mut inside = self.binary_t(BinaryOp::Eq, self)?; // false only for NaN
                if let Some(lo) = min {
                    inside = inside.binary_t(
                        BinaryOp::LogicalAnd,
                        &Tensor::binary(BinaryOp::Gt, Arg::tensor(self), lo)?,
                    )?;
                }
                if let Some(hi) = max {
                    inside = inside.binary_t(
                        BinaryOp::LogicalAnd,
                        &Tensor::binary(BinaryOp::Lt, Arg::tensor(self), hi)?,
                    )?;
                }
                Ok((out, inside))
            })?;
            return Tensor::where_(&inside, Arg::tensor(self), Arg::tensor(&out));
        }
        let mut out = self.clone();
        if let Some(lo) = min {
            out = Tensor::binary(BinaryOp::Maximum, Arg::tensor(&out), lo)?;
        }
        if let Some(hi) = max {
            out = Tensor::binary(BinaryOp::Minimum, Arg::tensor(&out), hi)?;
        }
        // clamp keeps the input's dtype category rules: an int tensor clamped by float bounds
        // becomes float, as in torch.
        Ok(out)
    }

    pub fn masked_fill(&self, mask: &Tensor, value: Arg) -> Result<Tensor> {
        if mask.dtype() != DType::Bool {
            return Err(Error::runtime(format!(
                "masked_fill_ only supports boolean masks, but got mask with dtype {}",
                mask.dtype()
            )));
        }
        let shape = broadcast_shapes("masked_fill", self.shape(), mask.shape())?;
        if shape != self.shape() {
            return Err(Error::runtime(format!(
                "masked_fill: the mask of shape {:?} must broadcast to the tensor's shape {:?}",
                mask.shape(),
                self.shape()
            )));
        }
        if value.tensor.dims() != 0 {
            return Err(Error::runtime(format!(
                "masked_fill_ only supports a 0-dimensional value tensor, but got tensor with {} dimension(s).",
                value.tensor.dims()
            )));
        }
        let v = value.tensor.to_dtype(self.dtype());
        Tensor::where_(mask, Arg::tensor(&v), Arg::tensor(self))
    }
}

fn float_unary<T: Arith + Float>(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    use UnaryOp::*;
    let src = (x.storage().as_slice::<T>(), x.layout());
    let c = |v: f64| T::from_f64c(v);
    let v: Vec<T> = match op {
        Neg => map1(src, |a: T| a.neg()),
        Abs => map1(src, |a: T| Arith::abs(a)),
        Sign => map1(src, |a: T| a.sign()),
        Exp => map1(src, |a: T| a.exp()),
        Log => map1(src, |a: T| a.ln()),
        Log1p => map1(src, |a: T| a.ln_1p()),
        Sqrt => map1(src, |a: T| a.sqrt()),
        Rsqrt => map1(src, |a: T| c(1.0).div(a.sqrt())),
        Sin => map1(src, |a: T| a.sin()),
        Cos => map1(src, |a: T| a.cos()),
        Tanh => map1(src, |a: T| a.tanh()),
        Sigmoid => map1(src, |a: T| c(1.0).div(c(1.0).add(a.neg().exp()))),
        Relu => map1(
            src,
            |a: T| if a.is_nan_() || a > c(0.0) { a } else { c(0.0) },
        ),
        Gelu => map1(src, |a: T| {
            c(0.5)
                .mul(a)
                .mul(c(1.0).add(a.mul(c(std::f64::consts::FRAC_1_SQRT_2)).erf()))
        }),
        GeluTanh => map1(src, |a: T| {
            // x (1 + tanh(u)) / 2 = x / (1 + e^(-2u)): one vectorisable exp, no tanh call.
            let k = c((2.0 / std::f64::consts::PI).sqrt());
            let inner = k.mul(a.add(c(0.044715).mul(a).mul(a).mul(a)));
            a.div(c(1.0).add(c(-2.0).mul(inner).exp_fast()))
        }),
        Silu => map1(src, |a: T| a.div(c(1.0).add(a.neg().exp()))),
        Floor => map1(src, |a: T| a.floor()),
        Ceil => map1(src, |a: T| a.ceil()),
        Round => map1(src, |a: T| a.round_even()),
        Trunc => map1(src, |a: T| a.trunc()),
        Reciprocal => map1(src, |a: T| c(1.0).div(a)),
        Erf => map1(src, |a: T| a.erf()),
        Erfinv => map1(src, crate::kernels::elementwise::erfinv),
        LogicalNot | BitNot => unreachable!("handled before dispatch"),
    };
    Tensor::from_vec(v, x.shape())
}

fn int_unary<T: Elem>(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let v: Vec<i64> = map1((x.storage().as_slice::<T>(), x.layout()), |a: T| {
        let a = a.to_i64();
        match op {
            UnaryOp::Neg => a.wrapping_neg(),
            UnaryOp::Abs => a.wrapping_abs(),
            UnaryOp::Sign => a.signum(),
            UnaryOp::Relu => a.max(0),
            _ => a,
        }
    });
    Ok(Tensor::from_vec(v, x.shape())?.to_dtype(x.dtype()))
}

fn with_int(
    dt: DType,
    _name: &'static str,
    _pre: impl Fn(&Tensor) -> Tensor,
    x: &Tensor,
    f: impl Fn(i64) -> i64 + Sync,
) -> Result<Tensor> {
    let v = x.to_vec_as::<i64>();
    let out: Vec<i64> = v.into_iter().map(f).collect();
    Ok(Tensor::from_vec(out, x.shape())?.to_dtype(dt))
}

fn arith<T: Arith>(op: BinaryOp, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    use BinaryOp::*;
    let (x, y) = (
        (a.storage().as_slice::<T>(), a.layout()),
        (b.storage().as_slice::<T>(), b.layout()),
    );
    let v: Vec<T> = match op {
        Add => map2(x, y, |p: T, q: T| p.add(q)),
        Sub => map2(x, y, |p: T, q: T| p.sub(q)),
        Mul => map2(x, y, |p: T, q: T| p.mul(q)),
        Div => map2(x, y, |p: T, q: T| p.div(q)),
        FloorDiv => map2(x, y, |p: T, q: T| p.floor_div(q)),
        Rem => map2(x, y, |p: T, q: T| p.rem(q)),
        Pow => map2(x, y, |p: T, q: T| p.pow(q)),
        Maximum => map2(x, y, |p: T, q: T| p.maximum(q)),
        Minimum => map2(x, y, |p: T, q: T| p.minimum(q)),
        BitAnd | BitOr | BitXor => map2(x, y, |p: T, q: T| {
            let (p, q) = (p.to_i64(), q.to_i64());
            T::from_i64(match op {
                BitAnd => p & q,
                BitOr => p | q,
                _ => p ^ q,
            })
        }),
        _ => unreachable!("comparisons and logical ops are dispatched elsewhere"),
    };
    Tensor::from_vec(v, shape)
}

fn bool_arith(op: BinaryOp, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    use BinaryOp::*;
    let (x, y) = (
        (a.storage().as_slice::<bool>(), a.layout()),
        (b.storage().as_slice::<bool>(), b.layout()),
    );
    let v: Vec<bool> = match op {
        Add | BitOr | Maximum => map2(x, y, |p: bool, q: bool| p || q),
        Mul | BitAnd | Minimum => map2(x, y, |p: bool, q: bool| p && q),
        BitXor => map2(x, y, |p: bool, q: bool| p != q),
        Pow => map2(x, y, |p: bool, q: bool| p || !q),
        _ => {
            // floor_divide / remainder on bools go through int64 like torch's promotion would.
            let r = arith::<i64>(op, &a.to_dtype(DType::I64), &b.to_dtype(DType::I64), shape)?;
            return Ok(r);
        }
    };
    Tensor::from_vec(v, shape)
}

fn compare<T: Elem>(op: BinaryOp, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    use BinaryOp::*;
    let (x, y) = (
        (a.storage().as_slice::<T>(), a.layout()),
        (b.storage().as_slice::<T>(), b.layout()),
    );
    let v: Vec<bool> = match op {
        Eq => map2(x, y, |p: T, q: T| p == q),
        Ne => map2(x, y, |p: T, q: T| p != q),
        Lt => map2(x, y, |p: T, q: T| p < q),
        Le => map2(x, y, |p: T, q: T| p <= q),
        Gt => map2(x, y, |p: T, q: T| p > q),
        Ge => map2(x, y, |p: T, q: T| p >= q),
        _ => unreachable!(),
    };
    Tensor::from_vec(v, shape)
}
