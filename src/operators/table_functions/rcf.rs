//! `RANDOM_CUT_FOREST(cursor [, numberOfTrees, subSampleSize, timeDecay, shingleSize])` and
//! `RANDOM_CUT_FOREST_WITH_EXPLANATION(cursor [, numberOfTrees, subSampleSize, timeDecay,
//! shingleSize, withDirectionality])`: online anomaly scores from a Random Cut Forest
//! (Guha, Mishra, Roy, Schrijvers, "Robust random cut forest based anomaly detection on
//! streams", ICML 2016), computed as AWS's RCF library does.
//!
//! # Arguments (KDA's defaults and ranges)
//! `numberOfTrees` 100 (1..=1000), `subSampleSize` 256 (10..=1000), `timeDecay` 100000
//! (1..=2^63-1), `shingleSize` 1 (1..=30), `withDirectionality` FALSE. The arguments are
//! independent: a `timeDecay` at or below `subSampleSize` (an AWS workshop passes
//! `1, 10, 10, 2`) only makes the samples favour the newest points more strongly.
//! At most 30 numeric columns.
//!
//! # Output
//! The cursor's columns, `ANOMALY_SCORE` DOUBLE (and for the explanation variant
//! `ANOMALY_EXPLANATION` VARCHAR), ROWTIME: one row per input row, same ROWTIME.
//!
//! # The model
//! - Points: the cursor's numeric columns (DOUBLE, REAL, INTEGER, BIGINT, SMALLINT,
//!   TINYINT) as `f64`, in column order; DECIMAL and non-numeric columns pass through and
//!   are ignored. With `shingleSize` s > 1 a point is the concatenation of the last s rows'
//!   vectors (oldest first), so it has `columns × s` dimensions.
//! - Each tree keeps its own sample of at most `subSampleSize` points, chosen by
//!   time-decayed reservoir sampling: point number t gets the weight `ln(-ln u) - t / timeDecay`
//!   (u uniform) and the tree keeps the points of smallest weight, so recent points are
//!   favoured and a point's chance to stay decays exponentially with its age in points.
//! - Each tree is a random cut tree over its sample: a cut's dimension is chosen with
//!   probability proportional to the bounding box's range in that dimension, its value
//!   uniformly within that range. Insertion follows Guha et al.: at each node a cut is drawn
//!   in the box extended by the new point; if it separates the point from the node's box,
//!   the point becomes a new leaf there, otherwise it descends. Deletion removes the leaf
//!   and lifts its sibling. Nodes keep bounding boxes and masses, so an update or a score
//!   costs O(trees × depth × dimensions), independent of the sample size. Equal points share
//!   a leaf (its mass counts them).
//! - Score: AWS RCF's scalar anomaly score (depth-weighted, not CoDisp). Going down to the
//!   leaf where the point would land: at the leaf, `1/(depth+1)` (or, when the leaf is the
//!   same point, `(1 - m/2M) / (depth + log2(m+1))` for leaf mass m and tree mass M); then,
//!   back up towards the root, at every node of depth k whose box the point lies outside,
//!   `score = p/(k+1) + (1-p)·score` with p the probability that a random cut of the box
//!   extended by the point separates the point (added range / extended range). The tree's
//!   result is multiplied by log2(M+1); ANOMALY_SCORE is the mean over trees. Typical
//!   points score around 1; clear outliers several times more.
//! - Each row is scored before its point is inserted.
//! - Warm-up (A23, as KDA documents): rows score 0 until the forest has received
//!   `subSampleSize` points (the trees are full); the first `shingleSize - 1` rows, which
//!   do not complete a shingle, also score 0.
//! - A row with a NULL (or NaN/infinite) numeric value gets a NULL ANOMALY_SCORE (and
//!   explanation), is not learned and does not enter the shingle.
//! - Randomness: one xoshiro256++ generator per tree, seeded from a fixed seed and the
//!   tree's index, so a run over the same input gives the same scores.
//! - Checkpoints save the whole forest bit for bit (trees, samples, generator states,
//!   the pending shingle): a restored application scores exactly as if never stopped.
//!
//! # Explanation
//! `{"<column>":{"DIRECTION":"HIGH|LOW","STRENGTH":"s","ATTRIBUTION_SCORE":"a"}, ...}` for
//! every numeric column, values as text with 4 decimals (KDA's format);
//! DIRECTION and STRENGTH only with `withDirectionality`. The attribution is AWS RCF's
//! directional attribution (the score split by dimension and by side — above or below
//! the node's box — along the same traversal), summed over the column's shingle
//! positions, so the columns' attributions add up to ANOMALY_SCORE. DIRECTION is HIGH when
//! the part above outweighs the part below; STRENGTH is `|high - low| / min(high, low)`
//! (how many times stronger the winning side is, minus one; the denominator is at least
//! 0.1% of high + low). During warm-up every column reads LOW, strength 0, attribution 0.

use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, Float64Array, Float64Builder, RecordBatch, StringBuilder, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, SchemaRef, UInt32Type, UInt64Type};
use datafusion::common::ScalarValue;

use super::common::{
    Args, append_before_rowtime, batch_with_extra, json_string, numeric_arrays, numeric_columns, read_row,
};
use crate::error::{Result, SluiceError};
use crate::operators::{OpContext, Operator};
use crate::state::snapshot;

pub const RANDOM_CUT_FOREST: &str = "RANDOM_CUT_FOREST";
pub const RANDOM_CUT_FOREST_WITH_EXPLANATION: &str = "RANDOM_CUT_FOREST_WITH_EXPLANATION";

/// The fixed seed of every forest (tree i uses `SEED + i`).
pub const SEED: u64 = 0x5EED_0FF0_2E57;

/// At most this many numeric columns (KDA's limit).
pub const MAX_COLUMNS: usize = 30;

/// Forests whose state could exceed this many bytes are refused when planned.
pub const MAX_FOREST_BYTES: f64 = 4.0 * (1u64 << 30) as f64;

#[derive(Debug, Clone)]
pub struct RcfConfig {
    pub trees: usize,
    pub sample_size: usize,
    pub time_decay: f64,
    pub shingle_size: usize,
    /// Some(withDirectionality) for the explanation variant.
    pub explanation: Option<bool>,
    /// The cursor's numeric columns.
    pub columns: Vec<usize>,
}

impl RcfConfig {
    pub fn parse(explanation: bool, args: &[ScalarValue], input: &SchemaRef) -> Result<Self, String> {
        let func = if explanation {
            RANDOM_CUT_FOREST_WITH_EXPLANATION
        } else {
            RANDOM_CUT_FOREST
        };
        let a = Args::new(func, args);
        let mut names = vec!["numberOfTrees", "subSampleSize", "timeDecay", "shingleSize"];
        if explanation {
            names.push("withDirectionality");
        }
        a.arity(0, &names)?;
        let trees = a.int(0, "numberOfTrees", Some(100), 1, 1000)? as usize;
        let sample_size = a.int(1, "subSampleSize", Some(256), 10, 1000)? as usize;
        let time_decay = a.int(2, "timeDecay", Some(100_000), 1, i64::MAX)?;
        let shingle_size = a.int(3, "shingleSize", Some(1), 1, 30)? as usize;
        let directionality = if explanation {
            Some(a.boolean(4, "withDirectionality", false)?)
        } else {
            None
        };
        let columns = numeric_columns(func, input)?;
        if columns.len() > MAX_COLUMNS {
            return Err(format!(
                "{func}: the cursor has {} numeric columns; at most {MAX_COLUMNS} are supported",
                columns.len()
            ));
        }
        let dim = (columns.len() * shingle_size) as f64;
        let (t, n) = (trees as f64, sample_size as f64);
        // Per tree: up to 2n nodes with two boxes each, and n sampled points.
        let bytes = t * (2.0 * n * (16.0 * dim + 24.0) + n * (8.0 * dim + 16.0));
        if bytes > MAX_FOREST_BYTES {
            return Err(format!(
                "{func}: {trees} trees of {sample_size} points of {dim} dimensions ({} numeric columns × \
                 shingleSize {shingle_size}) need about {:.1} GB; reduce numberOfTrees, subSampleSize, \
                 shingleSize or the numeric columns",
                columns.len(),
                bytes / 1e9
            ));
        }
        Ok(RcfConfig {
            trees,
            sample_size,
            time_decay: time_decay as f64,
            shingle_size,
            explanation: directionality,
            columns,
        })
    }

    fn func(&self) -> &'static str {
        if self.explanation.is_some() {
            RANDOM_CUT_FOREST_WITH_EXPLANATION
        } else {
            RANDOM_CUT_FOREST
        }
    }
}

/// The cursor's columns, `ANOMALY_SCORE` DOUBLE (, `ANOMALY_EXPLANATION` VARCHAR), ROWTIME.
pub fn output_schema(config: &RcfConfig, input: &SchemaRef) -> Result<SchemaRef, String> {
    let mut extra = vec![Field::new("ANOMALY_SCORE", DataType::Float64, true)];
    if config.explanation.is_some() {
        extra.push(Field::new("ANOMALY_EXPLANATION", DataType::Utf8, true));
    }
    append_before_rowtime(config.func(), input, extra)
}

const NIL: u32 = u32::MAX;

/// xoshiro256++ (Blackman and Vigna) seeded by SplitMix64: small, fast, stable across
/// dependency upgrades, and its state can be checkpointed.
#[derive(Debug, Clone, PartialEq)]
struct Xoshiro {
    s: [u64; 4],
}

impl Xoshiro {
    fn seeded(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Xoshiro {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// NIL for a leaf.
    left: u32,
    right: u32,
    cut_dim: u32,
    /// Points with `x[cut_dim] <= cut` go left.
    cut: f64,
    /// Points below this node, duplicates included.
    mass: u32,
}

/// A sampled point of a tree: its weight (smaller stays longer) and its slot.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    weight: f64,
    slot: u32,
}

impl Eq for Sample {}

impl PartialOrd for Sample {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sample {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.weight.total_cmp(&other.weight).then(self.slot.cmp(&other.slot))
    }
}

/// One random cut tree and its time-decayed sample.
struct Tree {
    dim: usize,
    nodes: Vec<Node>,
    /// Bounding boxes, `dim` values per node; a leaf's box is its point.
    lo: Vec<f64>,
    hi: Vec<f64>,
    free: Vec<u32>,
    root: u32,
    rng: Xoshiro,
    capacity: usize,
    /// The sample, largest weight on top (the next to leave).
    heap: BinaryHeap<Sample>,
    /// The sampled points, `dim` values per slot.
    slots: Vec<f64>,
    path: Vec<u32>,
    evicted: Vec<f64>,
}

impl Tree {
    fn new(dim: usize, capacity: usize, seed: u64) -> Self {
        Tree {
            dim,
            nodes: Vec::with_capacity(2 * capacity),
            lo: Vec::with_capacity(2 * capacity * dim),
            hi: Vec::with_capacity(2 * capacity * dim),
            free: Vec::new(),
            root: NIL,
            rng: Xoshiro::seeded(seed),
            capacity,
            heap: BinaryHeap::with_capacity(capacity + 1),
            slots: Vec::with_capacity(capacity * dim),
            path: Vec::new(),
            evicted: vec![0.0; dim],
        }
    }

    fn lo(&self, n: u32) -> &[f64] {
        let b = n as usize * self.dim;
        &self.lo[b..b + self.dim]
    }

    fn hi(&self, n: u32) -> &[f64] {
        let b = n as usize * self.dim;
        &self.hi[b..b + self.dim]
    }

    fn mass(&self) -> u32 {
        if self.root == NIL {
            0
        } else {
            self.nodes[self.root as usize].mass
        }
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = node;
            id
        } else {
            self.nodes.push(node);
            self.lo.extend(std::iter::repeat_n(0.0, self.dim));
            self.hi.extend(std::iter::repeat_n(0.0, self.dim));
            (self.nodes.len() - 1) as u32
        }
    }

    fn new_leaf(&mut self, p: &[f64]) -> u32 {
        let id = self.alloc(Node {
            left: NIL,
            right: NIL,
            cut_dim: 0,
            cut: 0.0,
            mass: 1,
        });
        let b = id as usize * self.dim;
        self.lo[b..b + self.dim].copy_from_slice(p);
        self.hi[b..b + self.dim].copy_from_slice(p);
        id
    }

    fn is_leaf(&self, n: u32) -> bool {
        self.nodes[n as usize].left == NIL
    }

    fn leaf_is(&self, n: u32, p: &[f64]) -> bool {
        self.lo(n) == p
    }

    fn child_for(&self, n: u32, p: &[f64]) -> u32 {
        let node = &self.nodes[n as usize];
        if p[node.cut_dim as usize] <= node.cut {
            node.left
        } else {
            node.right
        }
    }

    /// Grows the box of `n` to hold `p`.
    fn extend_box(&mut self, n: u32, p: &[f64]) {
        let b = n as usize * self.dim;
        for (i, x) in p.iter().enumerate() {
            if *x < self.lo[b + i] {
                self.lo[b + i] = *x;
            }
            if *x > self.hi[b + i] {
                self.hi[b + i] = *x;
            }
        }
    }

    /// Recomputes the box of internal node `n` from its children.
    fn refit_box(&mut self, n: u32) {
        let Node { left, right, .. } = self.nodes[n as usize];
        let (b, l, r) = (
            n as usize * self.dim,
            left as usize * self.dim,
            right as usize * self.dim,
        );
        for i in 0..self.dim {
            self.lo[b + i] = self.lo[l + i].min(self.lo[r + i]);
            self.hi[b + i] = self.hi[l + i].max(self.hi[r + i]);
        }
    }

    /// Draws a random cut of the box of `n` extended by `p`: a dimension with probability
    /// proportional to its range, a value uniform in it. None when the box is one point.
    fn random_cut(&mut self, n: u32, p: &[f64]) -> Option<(usize, f64)> {
        let b = n as usize * self.dim;
        let mut total = 0.0;
        for (i, x) in p.iter().enumerate() {
            total += self.hi[b + i].max(*x) - self.lo[b + i].min(*x);
        }
        if total <= 0.0 || !total.is_finite() {
            return None;
        }
        let r = self.rng.unit() * total;
        let mut acc = 0.0;
        let mut last = None;
        for (i, x) in p.iter().enumerate() {
            let lo = self.lo[b + i].min(*x);
            let range = self.hi[b + i].max(*x) - lo;
            if range <= 0.0 {
                continue;
            }
            if r < acc + range {
                return Some((i, lo + (r - acc)));
            }
            acc += range;
            last = Some((i, lo + range * 0.5));
        }
        last
    }

    /// A cut between leaf `n` and a different point `p`, in the first dimension where they
    /// differ: `(dimension, cut, p goes left)`.
    fn forced_cut(&self, n: u32, p: &[f64]) -> Option<(usize, f64, bool)> {
        let q = self.lo(n);
        (0..self.dim)
            .find(|&i| p[i] != q[i])
            .map(|i| if p[i] < q[i] { (i, p[i], true) } else { (i, q[i], false) })
    }

    /// Inserts `p` (Guha et al.'s insertion).
    fn insert(&mut self, p: &[f64]) {
        if self.root == NIL {
            self.root = self.new_leaf(p);
            return;
        }
        self.path.clear();
        let mut node = self.root;
        loop {
            let leaf = self.is_leaf(node);
            if leaf && self.leaf_is(node, p) {
                self.nodes[node as usize].mass += 1;
                for k in 0..self.path.len() {
                    let a = self.path[k];
                    self.nodes[a as usize].mass += 1;
                }
                return;
            }
            let separation = match self.random_cut(node, p) {
                Some((d, mut cut)) => {
                    let (lo, hi, x) = (self.lo(node)[d], self.hi(node)[d], p[d]);
                    if x < lo && (cut < lo || leaf) {
                        // p alone on the left: x <= cut < lo.
                        if cut >= lo {
                            cut = x;
                        }
                        Some((d, cut, true))
                    } else if x > hi && (cut >= hi || leaf) {
                        // p alone on the right: hi <= cut < x.
                        if cut >= x || cut < hi {
                            cut = hi;
                        }
                        Some((d, cut, false))
                    } else {
                        None
                    }
                }
                None => None,
            };
            // A leaf always separates (rounding or overflow aside: then cut where they differ).
            let separation = separation.or_else(|| if leaf { self.forced_cut(node, p) } else { None });
            if let Some((d, cut, p_left)) = separation {
                let new_leaf = self.new_leaf(p);
                let mass = self.nodes[node as usize].mass + 1;
                let (left, right) = if p_left { (new_leaf, node) } else { (node, new_leaf) };
                let parent = self.alloc(Node {
                    left,
                    right,
                    cut_dim: d as u32,
                    cut,
                    mass,
                });
                let (pb, nb) = (parent as usize * self.dim, node as usize * self.dim);
                for (i, x) in p.iter().enumerate() {
                    self.lo[pb + i] = self.lo[nb + i].min(*x);
                    self.hi[pb + i] = self.hi[nb + i].max(*x);
                }
                match self.path.last() {
                    Some(&up) => {
                        let up = &mut self.nodes[up as usize];
                        if up.left == node {
                            up.left = parent;
                        } else {
                            up.right = parent;
                        }
                    }
                    None => self.root = parent,
                }
                for k in 0..self.path.len() {
                    let a = self.path[k];
                    self.nodes[a as usize].mass += 1;
                    self.extend_box(a, p);
                }
                return;
            }
            if leaf {
                return; // unreachable: a leaf that differs from p has a forced cut
            }
            self.path.push(node);
            node = self.child_for(node, p);
        }
    }

    /// Deletes one copy of `p`; false if the tree does not hold it.
    fn delete(&mut self, p: &[f64]) -> bool {
        if self.root == NIL {
            return false;
        }
        self.path.clear();
        let mut node = self.root;
        while !self.is_leaf(node) {
            self.path.push(node);
            node = self.child_for(node, p);
        }
        if !self.leaf_is(node, p) {
            return false;
        }
        if self.nodes[node as usize].mass > 1 {
            self.nodes[node as usize].mass -= 1;
            for k in 0..self.path.len() {
                let a = self.path[k];
                self.nodes[a as usize].mass -= 1;
            }
            return true;
        }
        self.free.push(node);
        let Some(parent) = self.path.pop() else {
            self.root = NIL;
            return true;
        };
        let pn = self.nodes[parent as usize];
        let sibling = if pn.left == node { pn.right } else { pn.left };
        match self.path.last() {
            Some(&up) => {
                let up = &mut self.nodes[up as usize];
                if up.left == parent {
                    up.left = sibling;
                } else {
                    up.right = sibling;
                }
            }
            None => self.root = sibling,
        }
        self.free.push(parent);
        for k in (0..self.path.len()).rev() {
            let a = self.path[k];
            self.nodes[a as usize].mass -= 1;
            self.refit_box(a);
        }
        true
    }

    /// Offers point number `seq` to the sample; a point that enters it is inserted and
    /// the point it displaces is deleted.
    fn update(&mut self, p: &[f64], seq: u64, decay: f64) {
        let u = self.rng.unit().max(f64::MIN_POSITIVE);
        let weight = (-u.ln()).ln() - seq as f64 / decay;
        let d = self.dim;
        let slot = if self.heap.len() < self.capacity {
            let slot = self.heap.len() as u32;
            self.slots.extend_from_slice(p);
            slot
        } else {
            match self.heap.peek() {
                Some(top) if weight < top.weight => {
                    let top = self.heap.pop().expect("peeked");
                    let b = top.slot as usize * d;
                    let mut evicted = std::mem::take(&mut self.evicted);
                    evicted.copy_from_slice(&self.slots[b..b + d]);
                    self.delete(&evicted);
                    self.evicted = evicted;
                    self.slots[b..b + d].copy_from_slice(p);
                    top.slot
                }
                _ => return,
            }
        };
        self.heap.push(Sample { weight, slot });
        self.insert(p);
    }

    /// The tree's score of `p` (AWS RCF's scalar score), and with `attribution` its
    /// directional split: `(high, low)` per dimension, adding up to the score.
    fn score(&self, p: &[f64], path: &mut Vec<u32>, attribution: Option<(&mut [f64], &mut [f64])>) -> f64 {
        if self.root == NIL {
            return 0.0;
        }
        let total_mass = self.mass() as f64;
        let norm = (total_mass + 1.0).log2();
        path.clear();
        let mut node = self.root;
        while !self.is_leaf(node) {
            path.push(node);
            node = self.child_for(node, p);
        }
        let depth = path.len() as f64;
        let mut attribution = attribution;
        if self.leaf_is(node, p) {
            let m = self.nodes[node as usize].mass as f64;
            let score = (1.0 - m / (2.0 * total_mass)) / (depth + (m + 1.0).log2());
            if let Some((high, low)) = attribution.as_mut() {
                // A point already in the sample: no side to blame, split evenly.
                let share = score * norm / (2 * self.dim) as f64;
                high.iter_mut().for_each(|h| *h = share);
                low.iter_mut().for_each(|l| *l = share);
            }
            return score * norm;
        }
        let mut score = 1.0 / (depth + 1.0);
        if let Some((high, low)) = attribution.as_mut() {
            let q = self.lo(node);
            let mut sum = 0.0;
            for i in 0..self.dim {
                high[i] = (p[i] - q[i]).max(0.0);
                low[i] = (q[i] - p[i]).max(0.0);
                sum += high[i] + low[i];
            }
            for i in 0..self.dim {
                high[i] *= score / sum;
                low[i] *= score / sum;
            }
        }
        for k in (0..path.len()).rev() {
            let a = path[k];
            let (lo, hi) = (self.lo(a), self.hi(a));
            let mut added = 0.0;
            let mut extended = 0.0;
            for i in 0..self.dim {
                let gap = (p[i] - hi[i]).max(0.0) + (lo[i] - p[i]).max(0.0);
                added += gap;
                extended += hi[i] - lo[i] + gap;
            }
            let prob = added / extended;
            if prob.is_nan() || prob <= 0.0 {
                // Inside this box, hence inside every box above it.
                break;
            }
            let unseen = 1.0 / (k as f64 + 1.0);
            score = prob * unseen + (1.0 - prob) * score;
            if let Some((high, low)) = attribution.as_mut() {
                for i in 0..self.dim {
                    let above = (p[i] - hi[i]).max(0.0) / extended;
                    let below = (lo[i] - p[i]).max(0.0) / extended;
                    high[i] = above * unseen + (1.0 - prob) * high[i];
                    low[i] = below * unseen + (1.0 - prob) * low[i];
                }
            }
        }
        if let Some((high, low)) = attribution {
            high.iter_mut().for_each(|h| *h *= norm);
            low.iter_mut().for_each(|l| *l *= norm);
        }
        score * norm
    }
}

/// A forest of random cut trees over points of `dim` dimensions.
pub struct RandomCutForest {
    dim: usize,
    trees: Vec<Tree>,
    decay: f64,
    /// Points offered so far.
    seen: u64,
    path: Vec<u32>,
    tree_high: Vec<f64>,
    tree_low: Vec<f64>,
}

impl RandomCutForest {
    pub fn new(dim: usize, trees: usize, sample_size: usize, time_decay: f64, seed: u64) -> Self {
        RandomCutForest {
            dim,
            trees: (0..trees)
                .map(|i| Tree::new(dim, sample_size, seed.wrapping_add(i as u64)))
                .collect(),
            decay: time_decay,
            seen: 0,
            path: Vec::new(),
            tree_high: vec![0.0; dim],
            tree_low: vec![0.0; dim],
        }
    }

    /// Points offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The anomaly score of `p` (0 for an empty forest).
    pub fn score(&mut self, p: &[f64]) -> f64 {
        let mut sum = 0.0;
        for t in &self.trees {
            sum += t.score(p, &mut self.path, None);
        }
        sum / self.trees.len() as f64
    }

    /// The anomaly score of `p` and its attribution: per dimension, the part due to `p`
    /// lying above (`high`) and below (`low`) the sampled points.
    pub fn attribution(&mut self, p: &[f64], high: &mut [f64], low: &mut [f64]) -> f64 {
        high.iter_mut().for_each(|h| *h = 0.0);
        low.iter_mut().for_each(|l| *l = 0.0);
        let mut sum = 0.0;
        for t in &self.trees {
            sum += t.score(p, &mut self.path, Some((&mut self.tree_high, &mut self.tree_low)));
            for i in 0..self.dim {
                high[i] += self.tree_high[i];
                low[i] += self.tree_low[i];
            }
        }
        let n = self.trees.len() as f64;
        high.iter_mut().for_each(|h| *h /= n);
        low.iter_mut().for_each(|l| *l /= n);
        sum / n
    }

    /// Offers `p` to every tree's sample.
    pub fn update(&mut self, p: &[f64]) {
        let seq = self.seen;
        self.seen += 1;
        for t in &mut self.trees {
            t.update(p, seq, self.decay);
        }
    }
}

pub struct RcfOp {
    config: RcfConfig,
    schema: SchemaRef,
    forest: RandomCutForest,
    /// Numeric column names, JSON-quoted (explanation keys).
    keys: Vec<String>,
    /// The last rows' vectors, oldest first (at most shingleSize).
    shingle: VecDeque<Vec<f64>>,
    point: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    warmup_explanation: String,
}

impl RcfOp {
    pub fn new(config: RcfConfig, input: &SchemaRef) -> Result<Self, String> {
        let schema = output_schema(&config, input)?;
        let dim = config.columns.len() * config.shingle_size;
        let keys: Vec<String> = config
            .columns
            .iter()
            .map(|&c| json_string(input.field(c).name()))
            .collect();
        let mut op = RcfOp {
            forest: RandomCutForest::new(dim, config.trees, config.sample_size, config.time_decay, SEED),
            keys,
            shingle: VecDeque::with_capacity(config.shingle_size),
            point: vec![0.0; dim],
            high: vec![0.0; dim],
            low: vec![0.0; dim],
            warmup_explanation: String::new(),
            config,
            schema,
        };
        op.warmup_explanation = op.explain(None);
        Ok(op)
    }

    /// The explanation JSON; None: warm-up (LOW, strength 0, attribution 0).
    fn explain(&self, attribution: Option<(&[f64], &[f64])>) -> String {
        let cols = self.keys.len();
        let directional = self.config.explanation == Some(true);
        let mut s = String::from("{");
        for (c, key) in self.keys.iter().enumerate() {
            let (mut high, mut low) = (0.0, 0.0);
            if let Some((h, l)) = attribution {
                for k in 0..self.config.shingle_size {
                    high += h[k * cols + c];
                    low += l[k * cols + c];
                }
            }
            if c > 0 {
                s.push(',');
            }
            let _ = write!(s, "{key}:{{");
            if directional {
                let direction = if high > low { "HIGH" } else { "LOW" };
                let weaker = high.min(low).max(1e-3 * (high + low));
                let strength = if weaker > 0.0 { (high - low).abs() / weaker } else { 0.0 };
                let _ = write!(s, "\"DIRECTION\":\"{direction}\",\"STRENGTH\":\"{strength:.4}\",");
            }
            let _ = write!(s, "\"ATTRIBUTION_SCORE\":\"{:.4}\"}}", high + low);
        }
        s.push('}');
        s
    }
}

/// Checkpoint sections of a forest: everything, bit for bit (arena layout, free lists,
/// samples and generator states), so a restored forest scores exactly as the original.
impl RcfOp {
    fn save(&self) -> Vec<Vec<ArrayRef>> {
        let f = &self.forest;
        let u64s = |v: Vec<u64>| -> ArrayRef { Arc::new(UInt64Array::from(v)) };
        let u32s = |v: Vec<u32>| -> ArrayRef { Arc::new(UInt32Array::from(v)) };
        let f64s = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
        let meta = vec![
            u64s(vec![f.seen]),
            u64s(vec![f.dim as u64]),
            u64s(vec![f.trees.len() as u64]),
        ];
        let shingle = vec![f64s(self.shingle.iter().flatten().copied().collect())];
        let count = |g: &dyn Fn(&Tree) -> usize| u64s(f.trees.iter().map(|t| g(t) as u64).collect());
        let mut trees = vec![
            u64s(f.trees.iter().map(|t| t.root as u64).collect()),
            count(&|t| t.nodes.len()),
            count(&|t| t.free.len()),
            count(&|t| t.heap.len()),
        ];
        for k in 0..4 {
            trees.push(u64s(f.trees.iter().map(|t| t.rng.s[k]).collect()));
        }
        let all = |g: &dyn Fn(&Tree) -> Vec<u32>| u32s(f.trees.iter().flat_map(g).collect());
        let nodes = vec![
            all(&|t| t.nodes.iter().map(|n| n.left).collect()),
            all(&|t| t.nodes.iter().map(|n| n.right).collect()),
            all(&|t| t.nodes.iter().map(|n| n.cut_dim).collect()),
            f64s(f.trees.iter().flat_map(|t| t.nodes.iter().map(|n| n.cut)).collect()),
            all(&|t| t.nodes.iter().map(|n| n.mass).collect()),
        ];
        let boxes = vec![
            f64s(f.trees.iter().flat_map(|t| t.lo.iter().copied()).collect()),
            f64s(f.trees.iter().flat_map(|t| t.hi.iter().copied()).collect()),
        ];
        let free = vec![all(&|t| t.free.clone())];
        let heap = vec![
            f64s(f.trees.iter().flat_map(|t| t.heap.iter().map(|e| e.weight)).collect()),
            all(&|t| t.heap.iter().map(|e| e.slot).collect()),
        ];
        let slots = vec![f64s(f.trees.iter().flat_map(|t| t.slots.iter().copied()).collect())];
        vec![meta, shingle, trees, nodes, boxes, free, heap, slots]
    }

    /// Loads what [`RcfOp::save`] wrote; None when it does not fit this forest.
    fn load(&mut self, sections: &[Vec<ArrayRef>]) -> Option<()> {
        let [meta, shingle, trees, nodes, boxes, free, heap, slots] = sections else {
            return None;
        };
        let u64s = |a: &ArrayRef| a.as_primitive_opt::<UInt64Type>().map(|a| a.values().to_vec());
        let u32s = |a: &ArrayRef| a.as_primitive_opt::<UInt32Type>().map(|a| a.values().to_vec());
        let f64s = |a: &ArrayRef| a.as_primitive_opt::<Float64Type>().map(|a| a.values().to_vec());
        let meta: Vec<u64> = meta.iter().map(u64s).collect::<Option<Vec<_>>>()?.concat();
        let dim = self.forest.dim;
        if meta.len() != 3 || meta[1] != dim as u64 || meta[2] != self.forest.trees.len() as u64 {
            return None;
        }
        let cols = self.config.columns.len();
        let shingle = f64s(shingle.first()?)?;
        if shingle.len() % cols != 0 || shingle.len() / cols > self.config.shingle_size {
            return None;
        }
        let t: Vec<Vec<u64>> = trees.iter().map(u64s).collect::<Option<_>>()?;
        let n: Vec<Vec<u32>> = [0, 1, 2, 4]
            .iter()
            .map(|&i| nodes.get(i).and_then(u32s))
            .collect::<Option<_>>()?;
        let cuts = f64s(nodes.get(3)?)?;
        let (lo, hi) = (f64s(boxes.first()?)?, f64s(boxes.get(1)?)?);
        let free = u32s(free.first()?)?;
        let (weights, heap_slots) = (f64s(heap.first()?)?, u32s(heap.get(1)?)?);
        let slots = f64s(slots.first()?)?;
        if t.len() != 8 || t.iter().any(|c| c.len() != self.forest.trees.len()) {
            return None;
        }
        let (mut at_node, mut at_free, mut at_heap) = (0usize, 0usize, 0usize);
        let mut rebuilt = Vec::with_capacity(self.forest.trees.len());
        for (i, old) in self.forest.trees.iter().enumerate() {
            let (nn, nf, nh) = (t[1][i] as usize, t[2][i] as usize, t[3][i] as usize);
            let mut tree = Tree::new(dim, old.capacity, 0);
            tree.root = t[0][i] as u32;
            tree.rng = Xoshiro {
                s: [t[4][i], t[5][i], t[6][i], t[7][i]],
            };
            for k in at_node..at_node + nn {
                tree.nodes.push(Node {
                    left: *n[0].get(k)?,
                    right: *n[1].get(k)?,
                    cut_dim: *n[2].get(k)?,
                    cut: *cuts.get(k)?,
                    mass: *n[3].get(k)?,
                });
            }
            tree.lo = lo.get(at_node * dim..(at_node + nn) * dim)?.to_vec();
            tree.hi = hi.get(at_node * dim..(at_node + nn) * dim)?.to_vec();
            tree.free = free.get(at_free..at_free + nf)?.to_vec();
            for k in at_heap..at_heap + nh {
                tree.heap.push(Sample {
                    weight: *weights.get(k)?,
                    slot: *heap_slots.get(k)?,
                });
            }
            tree.slots = slots.get(at_heap * dim..(at_heap + nh) * dim)?.to_vec();
            let valid = |x: u32| x == NIL || (x as usize) < nn;
            let consistent = nh <= tree.capacity
                && valid(tree.root)
                && tree.nodes.iter().all(|n| {
                    valid(n.left) && valid(n.right) && (n.left == NIL) == (n.right == NIL) && (n.cut_dim as usize) < dim
                })
                && tree.free.iter().all(|&x| (x as usize) < nn)
                && tree.heap.iter().all(|e| (e.slot as usize) < nh);
            if !consistent {
                return None;
            }
            at_node += nn;
            at_free += nf;
            at_heap += nh;
            rebuilt.push(tree);
        }
        self.forest.trees = rebuilt;
        self.forest.seen = meta[0];
        self.shingle = shingle.chunks(cols).map(<[f64]>::to_vec).collect();
        Some(())
    }
}

impl Operator for RcfOp {
    fn name(&self) -> &'static str {
        if self.config.explanation.is_some() {
            "RandomCutForestWithExplanation"
        } else {
            "RandomCutForest"
        }
    }

    fn on_batch(&mut self, batch: RecordBatch, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let arrays = numeric_arrays(&batch, &self.config.columns)?;
        let cols = self.config.columns.len();
        let shingle_size = self.config.shingle_size;
        let explained = self.config.explanation.is_some();
        let mut scores = Float64Builder::with_capacity(n);
        let mut explanations = if explained {
            Some(StringBuilder::with_capacity(n, n * self.warmup_explanation.len()))
        } else {
            None
        };
        let mut row = vec![0.0; cols];
        for i in 0..n {
            if !read_row(&arrays, i, &mut row) {
                scores.append_null();
                if let Some(e) = explanations.as_mut() {
                    e.append_null();
                }
                continue;
            }
            let mut slot = if self.shingle.len() == shingle_size {
                self.shingle.pop_front().unwrap_or_default()
            } else {
                Vec::with_capacity(cols)
            };
            slot.clear();
            slot.extend_from_slice(&row);
            self.shingle.push_back(slot);
            if self.shingle.len() < shingle_size {
                scores.append_value(0.0);
                if let Some(e) = explanations.as_mut() {
                    e.append_value(&self.warmup_explanation);
                }
                continue;
            }
            for (k, v) in self.shingle.iter().enumerate() {
                self.point[k * cols..(k + 1) * cols].copy_from_slice(v);
            }
            let warm = self.forest.seen() >= self.config.sample_size as u64;
            match explanations.as_mut() {
                Some(e) if warm => {
                    let score = self.forest.attribution(&self.point, &mut self.high, &mut self.low);
                    scores.append_value(score);
                    e.append_value(self.explain(Some((&self.high, &self.low))));
                }
                Some(e) => {
                    scores.append_value(0.0);
                    e.append_value(&self.warmup_explanation);
                }
                None if warm => scores.append_value(self.forest.score(&self.point)),
                None => scores.append_value(0.0),
            }
            self.forest.update(&self.point);
        }
        let mut extra: Vec<ArrayRef> = vec![Arc::new(scores.finish())];
        if let Some(mut e) = explanations {
            extra.push(Arc::new(e.finish()));
        }
        Ok(vec![batch_with_extra(&batch, &self.schema, extra)?])
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        if self.forest.seen == 0 && self.shingle.is_empty() {
            return Ok(None);
        }
        Ok(Some(snapshot::encode(&self.save())?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = snapshot::decode(state)?;
        self.load(&sections).ok_or_else(|| {
            SluiceError::runtime(format!(
                "the saved state of {} does not fit its current arguments",
                self.config.func()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{batch, check_batches, on_batch, schema};
    use super::*;
    use crate::time::Millis;
    use datafusion::arrow::array::{Array, AsArray, Float64Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::Float64Type;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn gaussian(rng: &mut SmallRng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(1e-12);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn int_args(values: &[i64]) -> Vec<ScalarValue> {
        values.iter().map(|v| ScalarValue::Int64(Some(*v))).collect()
    }

    /// A noisy sine in (x, y) with far outliers at `outliers`.
    fn stream(n: usize, outliers: &[usize], seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in 0..n {
            let t = i as f64 * 0.05;
            let (mut x, mut y) = (
                10.0 * t.sin() + 0.3 * gaussian(&mut rng),
                5.0 * t.cos() + 0.3 * gaussian(&mut rng),
            );
            if let Some(k) = outliers.iter().position(|&o| o == i) {
                // Far away, each in a different place.
                let angle = k as f64 * 0.7;
                x = 40.0 * angle.cos();
                y = 40.0 * angle.sin();
            }
            xs.push(x);
            ys.push(y);
        }
        (xs, ys)
    }

    fn run(
        name: &str,
        args: &[ScalarValue],
        input: &SchemaRef,
        columns: Vec<ArrayRef>,
        n: usize,
    ) -> (Vec<RecordBatch>, SchemaRef) {
        let expected = super::super::output_schema(name, args, input).unwrap();
        let mut op = super::super::build(name, args, input).unwrap();
        let mut out = Vec::new();
        let mut last = Millis::MIN;
        // Feed in batches of 250 rows.
        let mut start = 0;
        while start < n {
            let len = 250.min(n - start);
            let cols = columns.iter().map(|c| c.slice(start, len)).collect();
            let b = batch(input, cols, (start..start + len).map(|i| 1_000 * i as Millis).collect());
            let o = on_batch(op.as_mut(), b);
            check_batches(&expected, &o, &mut last);
            assert_eq!(
                o.iter().map(|b| b.num_rows()).sum::<usize>(),
                len,
                "one row per input row"
            );
            out.extend(o);
            start += len;
        }
        (out, expected)
    }

    fn column_f64(batches: &[RecordBatch], name: &str) -> Vec<Option<f64>> {
        batches
            .iter()
            .flat_map(|b| {
                let i = b.schema().index_of(name).unwrap();
                let a = b.column(i).as_primitive::<Float64Type>().clone();
                (0..a.len()).map(move |k| a.is_valid(k).then(|| a.value(k)))
            })
            .collect()
    }

    fn column_str(batches: &[RecordBatch], name: &str) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let i = b.schema().index_of(name).unwrap();
                let a = b.column(i).as_string::<i32>().clone();
                (0..a.len()).map(move |k| a.value(k).to_string())
            })
            .collect()
    }

    fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    #[test]
    fn injected_outliers_score_far_above_normal_points() {
        let input = schema(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("y", DataType::Float64, true),
        ]);
        let n = 2_000;
        let outliers: Vec<usize> = (0..10).map(|k| 500 + k * 150).collect();
        let (xs, ys) = stream(n, &outliers, 11);
        let notes: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(xs)),
            Arc::new(StringArray::from(notes.clone())),
            Arc::new(Float64Array::from(ys)),
        ];
        let (out, expected) = run(RANDOM_CUT_FOREST, &[], &input, columns, n);
        let names: Vec<&str> = expected.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["x", "note", "y", "ANOMALY_SCORE", "ROWTIME"]);
        // Non-numeric columns pass through.
        assert_eq!(column_str(&out, "note"), notes);
        let scores: Vec<f64> = column_f64(&out, "ANOMALY_SCORE")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        // Warm-up: the first subSampleSize (256) rows score 0, then scores are positive.
        assert!(scores[..256].iter().all(|&s| s == 0.0));
        assert!(scores[256..].iter().all(|&s| s > 0.0));
        let normal: Vec<f64> = (256..n).filter(|i| !outliers.contains(i)).map(|i| scores[i]).collect();
        let p99 = percentile(normal.clone(), 0.99);
        let mean_normal = normal.iter().sum::<f64>() / normal.len() as f64;
        let mean_outlier = outliers.iter().map(|&i| scores[i]).sum::<f64>() / outliers.len() as f64;
        for &i in &outliers {
            assert!(scores[i] > p99, "outlier {i} scored {} <= p99 {p99}", scores[i]);
        }
        assert!(
            mean_outlier > 3.0 * mean_normal,
            "mean outlier {mean_outlier} vs mean normal {mean_normal}"
        );
    }

    #[test]
    fn same_seed_same_scores() {
        let input = schema(vec![Field::new("v", DataType::Int32, true)]);
        let values: Vec<i32> = (0..600)
            .map(|i| (i * 37) % 101 + if i == 450 { 5_000 } else { 0 })
            .collect();
        let args = int_args(&[30, 64, 1000, 1]);
        let run_once = || {
            let (out, _) = run(
                RANDOM_CUT_FOREST,
                &args,
                &input,
                vec![Arc::new(Int32Array::from(values.clone()))],
                values.len(),
            );
            column_f64(&out, "ANOMALY_SCORE")
        };
        let a = run_once();
        assert_eq!(a, run_once());
        assert!(a[..64].iter().all(|s| *s == Some(0.0)));
        let spike = a[450].unwrap();
        let others = percentile(a[64..].iter().map(|s| s.unwrap()).collect(), 0.99);
        assert!(spike >= others, "spike {spike} vs p99 {others}");
    }

    /// The AWS workshop's `1, 10, 10, 2`: a time decay equal to the sample size is a valid
    /// forest (one tree of 10 points that favours the newest), not an argument error.
    #[test]
    fn time_decay_at_or_below_the_sample_size_is_accepted() {
        let input = schema(vec![Field::new("v", DataType::Int32, true)]);
        for decay in [10, 5, 1] {
            let config = RcfConfig::parse(false, &int_args(&[1, 10, decay, 2]), &input).unwrap();
            assert_eq!((config.sample_size, config.time_decay), (10, decay as f64));
        }
        let values: Vec<i32> = (0..300)
            .map(|i| (i * 37) % 101 + if i == 250 { 5_000 } else { 0 })
            .collect();
        let (out, _) = run(
            RANDOM_CUT_FOREST,
            &int_args(&[1, 10, 10, 2]),
            &input,
            vec![Arc::new(Int32Array::from(values.clone()))],
            values.len(),
        );
        let scores: Vec<f64> = column_f64(&out, "ANOMALY_SCORE")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        // Warm-up: one row to complete the first shingle, then 10 shingles fill the tree.
        assert!(scores[..11].iter().all(|&s| s == 0.0), "{:?}", &scores[..12]);
        assert!(scores[11..].iter().all(|&s| s > 0.0));
        let others = scores[150..250].iter().cloned().fold(0.0, f64::max);
        assert!(
            scores[250] > others,
            "spike {} vs the 100 rows before {others}",
            scores[250]
        );
    }

    /// A sine wave (period ~21 rows) that freezes at its mean for 12 rows from row 1,000:
    /// every value is ordinary, only the shape is not.
    fn frozen_sine(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                if (1_000..1_012).contains(&i) {
                    0.0
                } else {
                    10.0 * (i as f64 * 0.3).sin()
                }
            })
            .collect()
    }

    #[test]
    fn shingling_finds_a_break_in_the_pattern() {
        let input = schema(vec![Field::new("v", DataType::Float64, true)]);
        let n = 1_500;
        let scores_for = |shingle: i64| {
            let (out, expected) = run(
                RANDOM_CUT_FOREST,
                &int_args(&[50, 128, 10_000, shingle]),
                &input,
                vec![Arc::new(Float64Array::from(frozen_sine(n)))],
                n,
            );
            assert_eq!(expected.fields().len(), 3);
            column_f64(&out, "ANOMALY_SCORE")
                .into_iter()
                .map(Option::unwrap)
                .collect::<Vec<f64>>()
        };
        let shingled = scores_for(10);
        // Warm-up: 9 rows to fill the first shingle, then 128 shingles.
        assert!(shingled[..9 + 128].iter().all(|&s| s == 0.0));
        assert!(shingled[9 + 128] > 0.0);
        let peak = |v: &[f64]| v[1_000..1_022].iter().cloned().fold(0.0, f64::max);
        let usual = shingled[500..990].iter().cloned().fold(0.0, f64::max);
        assert!(
            peak(&shingled) > 1.25 * usual,
            "break {} vs usual max {usual}",
            peak(&shingled)
        );
        // Without shingles the break is invisible: the value 0 is seen every half period.
        let flat = scores_for(1);
        let flat_usual = flat[500..990].iter().cloned().fold(0.0, f64::max);
        assert!(
            peak(&flat) < 1.05 * flat_usual,
            "flat {} vs usual max {flat_usual}",
            peak(&flat)
        );
        assert!(
            peak(&shingled) > 1.25 * peak(&flat),
            "shingled {} vs flat {}",
            peak(&shingled),
            peak(&flat)
        );
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    struct Explained {
        direction: Option<String>,
        strength: Option<String>,
        attribution_score: String,
    }

    #[test]
    fn explanation_attributes_a_spike_to_its_column_and_direction() {
        let input = schema(vec![
            Field::new("Systolic", DataType::Int32, true),
            Field::new("Diastolic", DataType::Int32, true),
            Field::new("level", DataType::Utf8, true),
        ]);
        let n = 1_200;
        let mut rng = SmallRng::seed_from_u64(3);
        let mut sys: Vec<Option<i32>> = (0..n).map(|_| Some(100 + rng.random_range(0..20))).collect();
        let mut dia: Vec<Option<i32>> = (0..n).map(|_| Some(60 + rng.random_range(0..20))).collect();
        dia[900] = Some(160); // a high diastolic spike
        sys[1_000] = Some(40); // a low systolic dip
        sys[1_100] = None; // NULL: not scored
        let level = StringArray::from(vec!["x"; n]);
        let args = vec![
            ScalarValue::Int64(Some(100)),
            ScalarValue::Int64(Some(256)),
            ScalarValue::Int64(Some(100_000)),
            ScalarValue::Int64(Some(1)),
            ScalarValue::Boolean(Some(true)),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(sys)),
            Arc::new(Int32Array::from(dia)),
            Arc::new(level),
        ];
        let (out, expected) = run(RANDOM_CUT_FOREST_WITH_EXPLANATION, &args, &input, columns.clone(), n);
        let names: Vec<&str> = expected.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "Systolic",
                "Diastolic",
                "level",
                "ANOMALY_SCORE",
                "ANOMALY_EXPLANATION",
                "ROWTIME"
            ]
        );
        let scores = column_f64(&out, "ANOMALY_SCORE");
        let explanations = column_str(&out, "ANOMALY_EXPLANATION");
        assert_eq!(scores[1_100], None);
        let parse = |s: &str| -> std::collections::BTreeMap<String, Explained> { serde_json::from_str(s).unwrap() };
        let num = |s: &Option<String>| s.as_deref().unwrap().parse::<f64>().unwrap();
        // Warm-up rows: LOW, strength 0, attribution 0.
        let w = parse(&explanations[10]);
        assert_eq!(w["Systolic"].direction.as_deref(), Some("LOW"));
        assert_eq!(num(&w["Diastolic"].strength), 0.0);
        assert_eq!(w["Diastolic"].attribution_score, "0.0000");
        for i in (256..n).filter(|&i| i != 1_100) {
            let e = parse(&explanations[i]);
            assert_eq!(e.len(), 2);
            let sum: f64 = e.values().map(|c| c.attribution_score.parse::<f64>().unwrap()).sum();
            assert!(
                (sum - scores[i].unwrap()).abs() < 2e-4,
                "row {i}: {sum} vs {:?}",
                scores[i]
            );
        }
        let spike = parse(&explanations[900]);
        assert_eq!(spike["Diastolic"].direction.as_deref(), Some("HIGH"));
        let (d, s) = (
            spike["Diastolic"].attribution_score.parse::<f64>().unwrap(),
            spike["Systolic"].attribution_score.parse::<f64>().unwrap(),
        );
        assert!(d > 3.0 * s, "diastolic {d} vs systolic {s}");
        assert!(num(&spike["Diastolic"].strength) > 1.0);
        let dip = parse(&explanations[1_000]);
        assert_eq!(dip["Systolic"].direction.as_deref(), Some("LOW"));
        assert!(
            dip["Systolic"].attribution_score.parse::<f64>().unwrap()
                > dip["Diastolic"].attribution_score.parse::<f64>().unwrap()
        );
        // The explanation variant scores exactly like the plain one.
        let (plain, _) = run(RANDOM_CUT_FOREST, &args[..4], &input, columns, n);
        assert_eq!(column_f64(&plain, "ANOMALY_SCORE"), scores);
    }

    #[test]
    fn without_directionality_only_attribution() {
        let input = schema(vec![Field::new("a", DataType::Float64, true)]);
        let values: Vec<f64> = (0..300).map(|i| (i % 17) as f64).collect();
        let (out, _) = run(
            RANDOM_CUT_FOREST_WITH_EXPLANATION,
            &[],
            &input,
            vec![Arc::new(Float64Array::from(values))],
            300,
        );
        let e = column_str(&out, "ANOMALY_EXPLANATION");
        assert_eq!(e[0], "{\"a\":{\"ATTRIBUTION_SCORE\":\"0.0000\"}}");
        assert!(e[299].starts_with("{\"a\":{\"ATTRIBUTION_SCORE\":\""), "{}", e[299]);
    }

    #[test]
    fn trees_stay_consistent_under_churn() {
        let mut rng = SmallRng::seed_from_u64(5);
        let mut f = RandomCutForest::new(3, 4, 32, 50.0, 9);
        for i in 0..3_000 {
            // Many duplicates and a drifting cloud.
            let p: Vec<f64> = if i % 3 == 0 {
                vec![1.0, 2.0, 3.0]
            } else {
                (0..3)
                    .map(|k| (i / 500) as f64 + k as f64 + rng.random::<f64>())
                    .collect()
            };
            f.update(&p);
        }
        for t in &f.trees {
            assert_eq!(t.mass() as usize, t.heap.len());
            assert_eq!(t.heap.len(), 32);
            // Every sampled point is found in its tree.
            for s in t.heap.iter() {
                let b = s.slot as usize * 3;
                let p = &t.slots[b..b + 3];
                let mut node = t.root;
                while !t.is_leaf(node) {
                    node = t.child_for(node, p);
                }
                assert!(t.leaf_is(node, p));
            }
            // Boxes hold their children and masses add up.
            fn check(t: &Tree, n: u32) -> u32 {
                if t.is_leaf(n) {
                    return t.nodes[n as usize].mass;
                }
                let Node { left, right, .. } = t.nodes[n as usize];
                for c in [left, right] {
                    for i in 0..t.dim {
                        assert!(t.lo(n)[i] <= t.lo(c)[i] && t.hi(c)[i] <= t.hi(n)[i]);
                    }
                }
                let m = check(t, left) + check(t, right);
                assert_eq!(m, t.nodes[n as usize].mass);
                m
            }
            check(t, t.root);
        }
    }

    #[test]
    fn arguments_are_validated() {
        let input = schema(vec![Field::new("x", DataType::Float64, true)]);
        let e = RcfConfig::parse(false, &int_args(&[0]), &input).unwrap_err();
        assert!(e.contains("RANDOM_CUT_FOREST") && e.contains("numberOfTrees"), "{e}");
        let e = RcfConfig::parse(false, &int_args(&[10, 5]), &input).unwrap_err();
        assert!(e.contains("subSampleSize"), "{e}");
        let e = RcfConfig::parse(false, &int_args(&[10, 256, 0]), &input).unwrap_err();
        assert!(e.contains("timeDecay"), "{e}");
        let e = RcfConfig::parse(false, &int_args(&[10, 256, 1000, 31]), &input).unwrap_err();
        assert!(e.contains("shingleSize"), "{e}");
        let e = RcfConfig::parse(false, &int_args(&[10, 256, 1000, 1, 1]), &input).unwrap_err();
        assert!(e.contains("expected a cursor and 0 to 4"), "{e}");
        let e = RcfConfig::parse(true, &[ScalarValue::Utf8(Some("x".into()))], &input).unwrap_err();
        assert!(
            e.contains("RANDOM_CUT_FOREST_WITH_EXPLANATION") && e.contains("numberOfTrees"),
            "{e}"
        );
        let strings = schema(vec![Field::new("s", DataType::Utf8, true)]);
        assert!(
            RcfConfig::parse(false, &[], &strings)
                .unwrap_err()
                .contains("no numeric column")
        );
        let wide = schema(
            (0..30)
                .map(|i| Field::new(format!("c{i}"), DataType::Float64, true))
                .collect(),
        );
        let e = RcfConfig::parse(false, &int_args(&[1000, 1000, 100_000, 30]), &wide).unwrap_err();
        assert!(e.contains("GB"), "{e}");
        let c = RcfConfig::parse(true, &[], &input).unwrap();
        assert_eq!(
            (c.trees, c.sample_size, c.time_decay, c.shingle_size),
            (100, 256, 100_000.0, 1)
        );
        assert_eq!(c.explanation, Some(false));
    }
}
