//! Model-based property tests of the layout algebra. A layout is checked against the obvious
//! model of what it describes: the list of storage offsets of its elements in row-major order.
//! Random chains of movement ops (permute, transpose, stepped slice, select, narrow, unsqueeze,
//! squeeze, expand) are applied to both; after every step the layout must walk exactly the
//! model's offsets, stay inside the storage, and answer the contiguity, overlap and view
//! questions the way the offsets say.

use super::*;
use crate::shape::{broadcast_shapes, checked_elem_count, infer_shape};
use crate::strided_index::{coalesce, for_each_row};
use proptest::prelude::*;

/// Largest tensor a chain may grow to (expands multiply the element count).
const MAX_ELEMS: usize = 4096;
const MAX_RANK: usize = 6;

/// The offsets of a tensor's elements in row-major order, with its shape.
#[derive(Clone, Debug)]
struct Model {
    shape: Vec<usize>,
    offsets: Vec<usize>,
}

impl Model {
    fn contiguous(shape: &[usize]) -> Model {
        Model {
            shape: shape.to_vec(),
            offsets: (0..elem_count(shape)).collect(),
        }
    }

    /// Builds a tensor of `shape` whose element at multi-index `i` is `self[f(i)]`.
    fn gather(&self, shape: Vec<usize>, f: impl Fn(&[usize]) -> Vec<usize>) -> Model {
        let offsets = multi_indices(&shape)
            .map(|i| self.offsets[self.flat(&f(&i))])
            .collect();
        Model { shape, offsets }
    }

    fn flat(&self, index: &[usize]) -> usize {
        index
            .iter()
            .zip(&self.shape)
            .fold(0, |acc, (&i, &d)| acc * d + i)
    }
}

/// Every multi-index of `shape` in row-major order.
fn multi_indices(shape: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    (0..elem_count(shape)).map(move |mut k| {
        let mut index = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            index[d] = k % shape[d];
            k /= shape[d];
        }
        index
    })
}

/// One movement op with raw parameters; `apply` reads them modulo the current shape, so any
/// draw is a valid op (or a no-op when the tensor has no dim to act on).
#[derive(Clone, Debug)]
struct Step {
    kind: u8,
    a: usize,
    b: usize,
    c: usize,
}

fn permutation(n: usize, seed: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        perm.swap(i, (s >> 33) % (i + 1));
    }
    perm
}

/// Applies `step` to the layout and the model alike; `None` when it would not apply.
fn apply(step: &Step, l: &Layout, m: &Model) -> Option<(Layout, Model)> {
    let n = l.dims();
    let Step { kind, a, b, c } = *step;
    match kind % 8 {
        0 => {
            let perm = permutation(n, a);
            let shape = perm.iter().map(|&p| m.shape[p]).collect();
            let model = m.gather(shape, |i| {
                let mut src = vec![0; n];
                for (k, &p) in perm.iter().enumerate() {
                    src[p] = i[k];
                }
                src
            });
            Some((l.permute(&perm).unwrap(), model))
        }
        1 if n > 0 => {
            let (d0, d1) = (a % n, b % n);
            let mut shape = m.shape.clone();
            shape.swap(d0, d1);
            let model = m.gather(shape, |i| {
                let mut src = i.to_vec();
                src.swap(d0, d1);
                src
            });
            Some((l.transpose(d0, d1), model))
        }
        2 if n > 0 => {
            let d = a % n;
            let size = m.shape[d];
            let start = b % (size + 2);
            let stop = c % (size + 2);
            let step = 1 + (c / 7) % 3;
            let (lo, hi) = (start.min(size), stop.clamp(start.min(size), size));
            let mut shape = m.shape.clone();
            shape[d] = (hi - lo).div_ceil(step);
            let model = m.gather(shape, |i| {
                let mut src = i.to_vec();
                src[d] = lo + i[d] * step;
                src
            });
            Some((l.slice(d, start, stop, step), model))
        }
        3 if n > 0 && m.shape[a % n] > 0 => {
            let d = a % n;
            let index = b % m.shape[d];
            let mut shape = m.shape.clone();
            shape.remove(d);
            let model = m.gather(shape, |i| {
                let mut src = i.to_vec();
                src.insert(d, index);
                src
            });
            Some((l.select(d, index), model))
        }
        4 if n > 0 => {
            let d = a % n;
            let size = m.shape[d];
            let start = b % (size + 1);
            let len = c % (size - start + 1);
            let mut shape = m.shape.clone();
            shape[d] = len;
            let model = m.gather(shape, |i| {
                let mut src = i.to_vec();
                src[d] += start;
                src
            });
            Some((l.narrow(d, start, len).unwrap(), model))
        }
        5 if n < MAX_RANK => {
            let d = a % (n + 1);
            let mut shape = m.shape.clone();
            shape.insert(d, 1);
            let model = m.gather(shape, |i| {
                let mut src = i.to_vec();
                src.remove(d);
                src
            });
            Some((l.unsqueeze(d), model))
        }
        6 => {
            // Squeeze one dim (a no-op unless it has size 1) or all of them.
            let dims: Vec<usize> = if b % 2 == 0 && n > 0 {
                vec![a % n]
            } else {
                (0..n).collect()
            };
            let keep: Vec<usize> = (0..n)
                .filter(|&d| !(dims.contains(&d) && m.shape[d] == 1))
                .collect();
            let shape = keep.iter().map(|&d| m.shape[d]).collect();
            let model = m.gather(shape, |i| {
                let mut src = vec![0; n];
                for (k, &d) in keep.iter().enumerate() {
                    src[d] = i[k];
                }
                src
            });
            Some((l.squeeze_dims(&dims), model))
        }
        7 => {
            // Stretch the size-1 dims and maybe put a new dim in front.
            let extra = usize::from(n < MAX_RANK && b % 2 == 0);
            let mut shape: Vec<usize> = m
                .shape
                .iter()
                .map(|&d| if d == 1 { 1 + c % 3 } else { d })
                .collect();
            if extra == 1 {
                shape.insert(0, a % 3);
            }
            if elem_count(&shape) > MAX_ELEMS {
                return None;
            }
            let model = m.gather(shape.clone(), |i| {
                i[extra..]
                    .iter()
                    .zip(&m.shape)
                    .map(|(&k, &d)| if d == 1 { 0 } else { k })
                    .collect()
            });
            Some((l.broadcast_as(&shape).unwrap(), model))
        }
        _ => None,
    }
}

fn base_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..5, 0..5)
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(kind, a, b, c)| Step { kind, a, b, c }),
        0..8,
    )
}

/// The layout and model after the chain, and whether an expand (stride 0) was applied.
fn run_chain(shape: &[usize], chain: &[Step]) -> Vec<(Layout, Model, bool)> {
    let mut l = Layout::contiguous(shape);
    let mut m = Model::contiguous(shape);
    let mut expanded = false;
    let mut states = vec![(l.clone(), m.clone(), false)];
    for step in chain {
        if let Some((l2, m2)) = apply(step, &l, &m) {
            expanded |= step.kind % 8 == 7;
            l = l2;
            m = m2;
            states.push((l.clone(), m.clone(), expanded));
        }
    }
    states
}

/// Strides that make `shape` walk `offsets` in order, when some exist: each dim's stride is
/// the step its first increment takes, and then every element must agree.
fn naive_view_exists(offsets: &[usize], shape: &[usize]) -> bool {
    if offsets.is_empty() {
        return true;
    }
    let m = Model {
        shape: shape.to_vec(),
        offsets: offsets.to_vec(),
    };
    let mut stride = vec![0i64; shape.len()];
    for d in 0..shape.len() {
        if shape[d] > 1 {
            let mut unit = vec![0; shape.len()];
            unit[d] = 1;
            stride[d] = m.offsets[m.flat(&unit)] as i64 - offsets[0] as i64;
            if stride[d] < 0 {
                return false;
            }
        }
    }
    multi_indices(shape).all(|i| {
        let predicted: i64 = offsets[0] as i64
            + i.iter()
                .zip(&stride)
                .map(|(&k, &s)| k as i64 * s)
                .sum::<i64>();
        predicted == m.offsets[m.flat(&i)] as i64
    })
}

/// A shape with the same element count: the dims regrouped (adjacent ones merged or split
/// into factors) with size-1 dims sprinkled in.
fn regroup(shape: &[usize], seed: usize) -> Vec<usize> {
    let mut out = vec![];
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    let mut i = 0;
    while i < shape.len() {
        match next() % 4 {
            0 if i + 1 < shape.len() => {
                out.push(shape[i] * shape[i + 1]);
                i += 2;
            }
            1 if shape[i].is_multiple_of(2) && shape[i] > 2 => {
                out.extend([2, shape[i] / 2]);
                i += 1;
            }
            2 => out.push(1),
            _ => {
                out.push(shape[i]);
                i += 1;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn movement_chains_walk_the_models_offsets(shape in base_shape(), chain in steps()) {
        let storage_len = elem_count(&shape);
        for (l, m, _) in run_chain(&shape, &chain) {
            prop_assert_eq!(l.shape(), &m.shape[..]);
            prop_assert_eq!(l.elem_count(), m.offsets.len());
            let walked: Vec<usize> = l.offsets().collect();
            prop_assert_eq!(&walked, &m.offsets);
            // Never a read past the storage, and the extent is exactly what is reached.
            let extent = m.offsets.iter().max().map_or(0, |&o| o + 1);
            prop_assert!(extent <= storage_len);
            prop_assert_eq!(l.storage_extent(), extent);
        }
    }

    #[test]
    fn contiguity_and_overlap_agree_with_the_offsets(shape in base_shape(), chain in steps()) {
        for (l, m, expanded) in run_chain(&shape, &chain) {
            let in_order = m.offsets.windows(2).all(|w| w[1] == w[0] + 1);
            prop_assert_eq!(l.is_contiguous(), in_order, "{:?}", l);
            match l.contiguous_offsets() {
                Some((start, end)) if !m.offsets.is_empty() => {
                    prop_assert_eq!(m.offsets.clone(), (start..end).collect::<Vec<_>>());
                }
                Some(_) => prop_assert!(m.offsets.is_empty()),
                None => prop_assert!(!in_order),
            }
            let mut sorted = m.offsets.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let unique = sorted.len() == m.offsets.len();
            // The check is conservative: "non-overlapping" must be true, and without an
            // expand (strides from slicing and permuting) it must also be recognised.
            if l.is_non_overlapping() {
                prop_assert!(unique, "{:?} claims no overlap", l);
            }
            if !expanded {
                prop_assert!(l.is_non_overlapping(), "{:?}", l);
            }
        }
    }

    #[test]
    fn view_succeeds_exactly_when_strides_exist(
        shape in base_shape(), chain in steps(), seed in any::<usize>()
    ) {
        for (l, m, _) in run_chain(&shape, &chain) {
            let target = regroup(l.shape(), seed);
            prop_assert_eq!(elem_count(&target), l.elem_count());
            match l.view(&target) {
                Some(v) => {
                    prop_assert_eq!(v.shape(), &target[..]);
                    prop_assert_eq!(v.offsets().collect::<Vec<_>>(), m.offsets.clone());
                }
                None => prop_assert!(
                    !naive_view_exists(&m.offsets, &target),
                    "view of {:?} as {:?} refused, but strides exist", l, target
                ),
            }
        }
    }

    #[test]
    fn coalesced_rows_walk_every_operand(shape in base_shape(), chain in steps()) {
        let states = run_chain(&shape, &chain);
        let (l, m, _) = states.last().unwrap();
        let dense = Layout::contiguous(l.shape());
        let (sh, [a, b]) = coalesce(l.shape(), [l, &dense]);
        prop_assert_eq!(elem_count(&sh), l.elem_count());
        let (mut wa, mut wb) = (vec![], vec![]);
        for_each_row(&sh, [&a, &b], |[oa, ob], [sa, sb], len| {
            wa.extend((0..len).map(|i| oa + i * sa));
            wb.extend((0..len).map(|i| ob + i * sb));
        });
        prop_assert_eq!(&wa, &m.offsets);
        prop_assert_eq!(wb, (0..l.elem_count()).collect::<Vec<_>>());
    }

    #[test]
    fn broadcast_shapes_follow_the_rule(
        a in prop::collection::vec(0usize..4, 0..5),
        b in prop::collection::vec(0usize..4, 0..5),
    ) {
        let n = a.len().max(b.len());
        let pad = |s: &[usize]| {
            let mut p = vec![1; n - s.len()];
            p.extend(s);
            p
        };
        let (pa, pb) = (pad(&a), pad(&b));
        let compatible = pa.iter().zip(&pb).all(|(&x, &y)| x == y || x == 1 || y == 1);
        match broadcast_shapes("t", &a, &b) {
            Ok(out) => {
                prop_assert!(compatible);
                let expected: Vec<usize> =
                    pa.iter().zip(&pb).map(|(&x, &y)| if x == 1 { y } else { x }).collect();
                prop_assert_eq!(&out, &expected);
                prop_assert_eq!(broadcast_shapes("t", &b, &a).unwrap(), out.clone());
                // Both operands expand to the result.
                prop_assert!(Layout::contiguous(&a).broadcast_as(&out).is_ok());
                prop_assert!(Layout::contiguous(&b).broadcast_as(&out).is_ok());
            }
            Err(_) => prop_assert!(!compatible),
        }
    }

    #[test]
    fn element_counts_report_overflow(shape in prop::collection::vec(any::<usize>(), 0..4)) {
        // Like torch, a running product past the address space is an overflow even when a
        // later zero would make the count 0.
        let mut acc = Some(1u128);
        for &d in &shape {
            acc = acc.map(|n| n * d as u128).filter(|&n| n <= usize::MAX as u128);
        }
        prop_assert_eq!(checked_elem_count(&shape), acc.map(|n| n as usize));
    }

    #[test]
    fn inferred_shapes_hold_every_element(
        requested in prop::collection::vec(-1i64..6, 0..4), numel in 0usize..64
    ) {
        if let Ok(out) = infer_shape("view", &requested, numel) {
            prop_assert_eq!(elem_count(&out), numel);
            prop_assert!(requested.iter().filter(|&&d| d == -1).count() <= 1);
            for (&r, &o) in requested.iter().zip(&out) {
                if r >= 0 {
                    prop_assert_eq!(r as usize, o);
                }
            }
        }
    }
}
