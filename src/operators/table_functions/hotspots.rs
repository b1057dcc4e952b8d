//! `HOTSPOTS(cursor, windowSize, scanRadius, minimumNumberOfPointsInAHotspot)`: dense
//! regions among the numeric columns of the last `windowSize` rows.
//!
//! - Arguments: `windowSize` in 100..=1000; `scanRadius` > 0 (DBSCAN's ε, Euclidean, in the
//!   columns' own units); `minimumNumberOfPointsInAHotspot` in 2..=windowSize (DBSCAN's
//!   minPts, the point itself included).
//! - Output: the cursor's columns, `HOTSPOTS_RESULT` VARCHAR, ROWTIME; one row per input
//!   row, with the hotspots of the window that ends with that row:
//!   `{"hotspots":[{"density":d,"minValues":[...],"maxValues":[...]}, ...]}`, values in the
//!   order of the cursor's numeric columns, hotspots by density descending.
//! - A hotspot is a DBSCAN cluster (core points — at least minPts points within the scan
//!   radius — connected through core neighbours, plus the border points within the radius
//!   of one of its core points; a border point near two clusters belongs to both)
//!   with at least minPts points. `density` = its number of points divided by the volume of
//!   its bounding box, each side taken as at least `scanRadius` (so a hotspot of identical
//!   or collinear points still has a finite density).
//! - Only numeric columns count (DOUBLE, REAL, INTEGER, BIGINT, SMALLINT, TINYINT; DECIMAL
//!   and other types are passed through and ignored). A row with a NULL (or NaN/infinite)
//!   numeric value does not enter the window; it is passed through with the current
//!   result.
//!
//! The window lives in a grid of cells of side `scanRadius / sqrt(d)`: every two points of
//! one cell are neighbours, and neighbours of a point lie in nearby cells (a fixed stencil,
//! or in many dimensions a scan of the occupied cells, done once when a cell appears: each
//! cell keeps the list of its occupied nearby cells). Each point keeps its neighbour
//! count, updated as points enter and leave the window (a neighbourhood query each, not a
//! pass over the window), so core status is always known. Clusters are recomputed only
//! when a row can change them (the entering or leaving point is or touches a core point,
//! or changes a core status), by a union-find over the cells that hold core points
//! (adjacent cells first, bounding boxes of their core points to skip most pairwise
//! checks); otherwise the previous result is reused.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, SchemaRef};
use datafusion::common::ScalarValue;

use super::common::{
    Args, FixedHashMap, append_before_rowtime, batch_with_extra, json_number, numeric_arrays, numeric_columns, read_row,
};
use crate::error::{Result, SluiceError};
use crate::operators::{OpContext, Operator};
use crate::state::snapshot;

pub const HOTSPOTS: &str = "HOTSPOTS";

/// Stencils larger than this are replaced by a scan of the occupied cells.
const MAX_STENCIL: usize = 1024;

#[derive(Debug, Clone)]
pub struct HotspotsConfig {
    pub window: usize,
    pub radius: f64,
    pub min_points: usize,
    /// The cursor's numeric columns.
    pub columns: Vec<usize>,
}

impl HotspotsConfig {
    pub fn parse(args: &[ScalarValue], input: &SchemaRef) -> Result<Self, String> {
        let a = Args::new(HOTSPOTS, args);
        a.arity(3, &["windowSize", "scanRadius", "minimumNumberOfPointsInAHotspot"])?;
        let window = a.int(0, "windowSize", None, 100, 1000)? as usize;
        let radius = a.positive(1, "scanRadius")?;
        let min_points = a.int(2, "minimumNumberOfPointsInAHotspot", None, 2, window as i64)? as usize;
        let columns = numeric_columns(HOTSPOTS, input)?;
        Ok(HotspotsConfig {
            window,
            radius,
            min_points,
            columns,
        })
    }
}

/// The cursor's columns, `HOTSPOTS_RESULT` VARCHAR, ROWTIME.
pub fn output_schema(_config: &HotspotsConfig, input: &SchemaRef) -> Result<SchemaRef, String> {
    append_before_rowtime(
        HOTSPOTS,
        input,
        vec![Field::new("HOTSPOTS_RESULT", DataType::Utf8, true)],
    )
}

/// One hotspot of a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotspot {
    pub count: usize,
    pub density: f64,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

struct Point {
    coords: Box<[f64]>,
    cell: u32,
    /// Points of the window within the scan radius, this one included.
    neighbours: u32,
}

/// An occupied cell of the grid.
struct Cell {
    key: Box<[i64]>,
    /// Sequence numbers of its points.
    members: Vec<u64>,
    /// The occupied cells (itself included) that may hold neighbours of its points, kept
    /// up to date as cells appear and disappear, so queries do no hashing.
    near: Vec<u32>,
}

pub struct HotspotsOp {
    config: HotspotsConfig,
    schema: SchemaRef,
    dim: usize,
    side: f64,
    radius2: f64,
    min_points: u32,
    /// Cell offsets (`dim` per offset) that may hold a neighbour; None: scan the cells.
    stencil: Option<Vec<i64>>,
    points: VecDeque<Point>,
    /// Sequence number of `points[0]`.
    front: u64,
    /// Cells by id (None: a free id).
    cells: Vec<Option<Cell>>,
    free_cells: Vec<u32>,
    cell_ids: FixedHashMap<Box<[i64]>, u32>,
    /// The JSON of the current window.
    result: String,
    scratch: Vec<u64>,
}

impl HotspotsOp {
    pub fn new(config: HotspotsConfig, input: &SchemaRef) -> Result<Self, String> {
        let schema = output_schema(&config, input)?;
        let dim = config.columns.len();
        let side = config.radius / (dim as f64).sqrt();
        if !side.is_finite() || side <= 0.0 {
            return Err(format!(
                "{HOTSPOTS}: argument scanRadius is too small for {dim} columns"
            ));
        }
        Ok(HotspotsOp {
            dim,
            side,
            radius2: config.radius * config.radius,
            min_points: config.min_points as u32,
            stencil: stencil(dim),
            points: VecDeque::with_capacity(config.window),
            front: 0,
            cells: Vec::new(),
            free_cells: Vec::new(),
            cell_ids: FixedHashMap::default(),
            result: render(&[]),
            scratch: Vec::new(),
            config,
            schema,
        })
    }

    fn point(&self, seq: u64) -> &Point {
        &self.points[(seq - self.front) as usize]
    }

    fn point_mut(&mut self, seq: u64) -> &mut Point {
        &mut self.points[(seq - self.front) as usize]
    }

    fn cell(&self, id: u32) -> &Cell {
        self.cells[id as usize].as_ref().expect("live cell")
    }

    fn is_core(&self, seq: u64) -> bool {
        self.point(seq).neighbours >= self.min_points
    }

    fn near(&self, a: &[f64], b: &[f64]) -> bool {
        let mut d2 = 0.0;
        for (x, y) in a.iter().zip(b) {
            d2 += (x - y) * (x - y);
        }
        d2 <= self.radius2
    }

    /// The cell holding `coords`, created (and linked to its nearby cells) if needed.
    fn cell_for(&mut self, coords: &[f64]) -> u32 {
        let key: Box<[i64]> = coords.iter().map(|x| (x / self.side).floor() as i64).collect();
        if let Some(&id) = self.cell_ids.get(&key) {
            return id;
        }
        let id = match self.free_cells.pop() {
            Some(id) => id,
            None => {
                self.cells.push(None);
                (self.cells.len() - 1) as u32
            }
        };
        let mut near = vec![id];
        match &self.stencil {
            Some(offsets) => {
                let mut probe = vec![0i64; self.dim];
                for off in offsets.chunks_exact(self.dim) {
                    if off.iter().all(|&o| o == 0) {
                        continue;
                    }
                    for ((p, k), o) in probe.iter_mut().zip(key.iter()).zip(off) {
                        *p = k.saturating_add(*o);
                    }
                    if let Some(&other) = self.cell_ids.get(&probe[..]) {
                        near.push(other);
                    }
                }
            }
            None => {
                for (other, cell) in self.cells.iter().enumerate() {
                    if let Some(cell) = cell
                        && cells_near(&key, &cell.key)
                    {
                        near.push(other as u32);
                    }
                }
            }
        }
        for &other in &near[1..] {
            if let Some(cell) = self.cells[other as usize].as_mut() {
                cell.near.push(id);
            }
        }
        self.cell_ids.insert(key.clone(), id);
        self.cells[id as usize] = Some(Cell {
            key,
            members: Vec::new(),
            near,
        });
        id
    }

    fn drop_cell(&mut self, id: u32) {
        let Some(cell) = self.cells[id as usize].take() else {
            return;
        };
        for &other in &cell.near[1..] {
            if let Some(c) = self.cells[other as usize].as_mut()
                && let Some(at) = c.near.iter().position(|&x| x == id)
            {
                c.near.swap_remove(at);
            }
        }
        self.cell_ids.remove(&cell.key);
        self.free_cells.push(id);
    }

    /// The points of the window within the scan radius of `coords` (a point of `cell`).
    fn neighbours(&self, coords: &[f64], cell: u32, out: &mut Vec<u64>) {
        out.clear();
        for &c in &self.cell(cell).near {
            for &s in &self.cell(c).members {
                if self.near(coords, &self.point(s).coords) {
                    out.push(s);
                }
            }
        }
    }

    /// Adds a point; true when the clusters may have changed.
    fn insert(&mut self, coords: &[f64]) -> bool {
        let cell = self.cell_for(coords);
        let mut near = std::mem::take(&mut self.scratch);
        self.neighbours(coords, cell, &mut near);
        let min = self.min_points;
        let mut changed = near.len() as u32 + 1 >= min;
        for &s in &near {
            let p = self.point_mut(s);
            p.neighbours += 1;
            // A core neighbour: the new point joins a cluster (or made it core).
            changed |= p.neighbours >= min;
        }
        let seq = self.front + self.points.len() as u64;
        self.points.push_back(Point {
            coords: coords.into(),
            cell,
            neighbours: near.len() as u32 + 1,
        });
        if let Some(c) = self.cells[cell as usize].as_mut() {
            c.members.push(seq);
        }
        self.scratch = near;
        changed
    }

    /// Removes the oldest point; true when the clusters may have changed.
    fn evict(&mut self) -> bool {
        let Some(old) = self.points.front() else { return false };
        let (coords, cell, was_core) = (old.coords.clone(), old.cell, old.neighbours >= self.min_points);
        let seq = self.front;
        if let Some(c) = self.cells[cell as usize].as_mut()
            && let Some(at) = c.members.iter().position(|&s| s == seq)
        {
            c.members.swap_remove(at);
        }
        let mut near = std::mem::take(&mut self.scratch);
        self.neighbours(&coords, cell, &mut near);
        let min = self.min_points;
        let mut changed = was_core;
        for &s in &near {
            let p = self.point_mut(s);
            changed |= p.neighbours >= min;
            p.neighbours -= 1;
        }
        self.scratch = near;
        self.points.pop_front();
        self.front += 1;
        if self.cell(cell).members.is_empty() {
            self.drop_cell(cell);
        }
        changed
    }

    /// The hotspots of the current window, densest first.
    pub fn hotspots(&self) -> Vec<Hotspot> {
        let dim = self.dim;
        // The core points of every cell, and their bounding boxes.
        // Per cell id: (first core point, end, box index).
        let mut core_at: Vec<Option<(usize, usize, usize)>> = vec![None; self.cells.len()];
        let mut core_points: Vec<u64> = Vec::new();
        let mut boxes: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
        let mut core_cells: Vec<u32> = Vec::new();
        for (id, cell) in self.cells.iter().enumerate() {
            let Some(cell) = cell else { continue };
            let start = core_points.len();
            core_points.extend(cell.members.iter().copied().filter(|&s| self.is_core(s)));
            if core_points.len() > start {
                let mut lo = vec![f64::INFINITY; dim];
                let mut hi = vec![f64::NEG_INFINITY; dim];
                for &s in &core_points[start..] {
                    for ((l, h), x) in lo.iter_mut().zip(hi.iter_mut()).zip(self.point(s).coords.iter()) {
                        *l = l.min(*x);
                        *h = h.max(*x);
                    }
                }
                core_at[id] = Some((start, core_points.len(), boxes.len()));
                boxes.push((lo, hi));
                core_cells.push(id as u32);
            }
        }
        let cores_of = |id: u32| -> &[u64] {
            let (start, end, _) = core_at[id as usize].expect("a core cell");
            &core_points[start..end]
        };
        let box_of = |id: u32| &boxes[core_at[id as usize].expect("a core cell").2];
        // Squared distances from a box to a point: nearest and farthest.
        let box_gap = |bx: &(Vec<f64>, Vec<f64>), p: &[f64]| {
            let mut near2 = 0.0;
            for ((l, h), x) in bx.0.iter().zip(&bx.1).zip(p) {
                let g = (l - x).max(x - h).max(0.0);
                near2 += g * g;
            }
            near2
        };
        // Whether some core point of `a` is within the radius of some core point of `b`.
        let touching = |a: u32, b: u32| {
            let (ba, bb) = (box_of(a), box_of(b));
            let (mut near2, mut far2) = (0.0, 0.0);
            for i in 0..dim {
                let g = (ba.0[i] - bb.1[i]).max(bb.0[i] - ba.1[i]).max(0.0);
                let f = (ba.1[i] - bb.0[i]).max(bb.1[i] - ba.0[i]);
                near2 += g * g;
                far2 += f * f;
            }
            if near2 > self.radius2 {
                return false;
            }
            if far2 <= self.radius2 {
                return true;
            }
            cores_of(a).iter().any(|&x| {
                let p = &self.point(x).coords;
                box_gap(bb, p) <= self.radius2 && cores_of(b).iter().any(|&y| self.near(p, &self.point(y).coords))
            })
        };
        // Core points of one cell are neighbours; two cells join when some of their core
        // points are. Adjacent cells first: most later pairs are then already joined.
        let mut sets = UnionFind::new(self.cells.len());
        for adjacent in [true, false] {
            for &a in &core_cells {
                let key_a = &self.cell(a).key;
                for &b in &self.cell(a).near {
                    if b <= a || core_at[b as usize].is_none() {
                        continue;
                    }
                    let is_adjacent = key_a
                        .iter()
                        .zip(self.cell(b).key.iter())
                        .all(|(x, y)| x.abs_diff(*y) <= 1);
                    if is_adjacent != adjacent || sets.find(a as usize) == sets.find(b as usize) {
                        continue;
                    }
                    if touching(a, b) {
                        sets.union(a as usize, b as usize);
                    }
                }
            }
        }
        let mut acc: FixedHashMap<usize, Hotspot> = FixedHashMap::default();
        let add = |acc: &mut FixedHashMap<usize, Hotspot>, root: usize, coords: &[f64]| {
            let h = acc.entry(root).or_insert_with(|| Hotspot {
                count: 0,
                density: 0.0,
                min: coords.to_vec(),
                max: coords.to_vec(),
            });
            h.count += 1;
            for ((lo, hi), x) in h.min.iter_mut().zip(h.max.iter_mut()).zip(coords) {
                *lo = lo.min(*x);
                *hi = hi.max(*x);
            }
        };
        let mut by_cluster: Vec<(usize, u32)> = core_cells.iter().map(|&c| (sets.find(c as usize), c)).collect();
        by_cluster.sort_unstable();
        for &(root, c) in &by_cluster {
            for &s in cores_of(c) {
                add(&mut acc, root, &self.point(s).coords);
            }
        }
        // Border points: not core, within the radius of a core point of the cluster. A
        // border point near two clusters belongs to both (DBSCAN's definition), so the
        // result does not depend on the order of the search.
        let mut joined = vec![usize::MAX; self.points.len()];
        for &(root, c) in &by_cluster {
            let bx = box_of(c);
            for &n in &self.cell(c).near {
                for &s in &self.cell(n).members {
                    let at = (s - self.front) as usize;
                    if joined[at] == root || self.is_core(s) {
                        continue;
                    }
                    let p = &self.point(s).coords;
                    if box_gap(bx, p) <= self.radius2
                        && cores_of(c).iter().any(|&x| self.near(p, &self.point(x).coords))
                    {
                        joined[at] = root;
                        add(&mut acc, root, p);
                    }
                }
            }
        }
        let mut out: Vec<Hotspot> = acc
            .into_values()
            .filter(|h| h.count >= self.config.min_points)
            .map(|mut h| {
                let volume: f64 = h
                    .min
                    .iter()
                    .zip(&h.max)
                    .map(|(lo, hi)| (hi - lo).max(self.config.radius))
                    .product();
                h.density = h.count as f64 / volume;
                h
            })
            .collect();
        out.sort_by(|a, b| {
            b.density.total_cmp(&a.density).then_with(|| {
                a.min
                    .iter()
                    .zip(&b.min)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        });
        out
    }
}

/// `{"hotspots":[{"density":d,"minValues":[...],"maxValues":[...]}, ...]}`.
pub fn render(hotspots: &[Hotspot]) -> String {
    let list = |v: &[f64]| v.iter().map(|x| json_number(*x)).collect::<Vec<_>>().join(",");
    let mut s = String::from("{\"hotspots\":[");
    for (i, h) in hotspots.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"density\":{},\"minValues\":[{}],\"maxValues\":[{}]}}",
            json_number(h.density),
            list(&h.min),
            list(&h.max)
        );
    }
    s.push_str("]}");
    s
}

/// Whether two cells (of side ε/√d) may hold points within ε of each other.
fn cells_near(a: &[i64], b: &[i64]) -> bool {
    let mut gap2 = 0.0;
    for (x, y) in a.iter().zip(b) {
        let gap = ((*x as f64 - *y as f64).abs() - 1.0).max(0.0);
        gap2 += gap * gap;
    }
    gap2 <= a.len() as f64
}

/// The offsets of the cells near a cell, or None when there are too many to enumerate.
fn stencil(dim: usize) -> Option<Vec<i64>> {
    let k = (dim as f64).sqrt().ceil() as i64;
    let width = (2 * k + 1) as usize;
    let total = width.checked_pow(dim as u32).filter(|&t| t <= MAX_STENCIL)?;
    let origin = vec![0i64; dim];
    let mut out = Vec::new();
    for n in 0..total {
        let mut rest = n;
        let off: Vec<i64> = (0..dim)
            .map(|_| {
                let o = (rest % width) as i64 - k;
                rest /= width;
                o
            })
            .collect();
        if cells_near(&origin, &off) {
            out.extend(off);
        }
    }
    Some(out)
}

struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        let mut root = x;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        while self.parent[x] != root {
            let next = self.parent[x];
            self.parent[x] = root;
            x = next;
        }
        root
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        let (big, small) = if self.size[a] >= self.size[b] { (a, b) } else { (b, a) };
        self.parent[small] = big;
        self.size[big] += self.size[small];
    }
}

impl Operator for HotspotsOp {
    fn name(&self) -> &'static str {
        "Hotspots"
    }

    fn on_batch(&mut self, batch: RecordBatch, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let arrays = numeric_arrays(&batch, &self.config.columns)?;
        let mut values = vec![0.0; self.dim];
        let mut results = StringBuilder::with_capacity(n, n * self.result.len());
        for i in 0..n {
            if read_row(&arrays, i, &mut values) {
                let mut changed = false;
                if self.points.len() >= self.config.window {
                    changed |= self.evict();
                }
                changed |= self.insert(&values);
                if changed {
                    self.result = render(&self.hotspots());
                }
            }
            results.append_value(&self.result);
        }
        let results: ArrayRef = Arc::new(results.finish());
        Ok(vec![batch_with_extra(&batch, &self.schema, vec![results])?])
    }

    /// The window's points, oldest first, one column per dimension.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        if self.points.is_empty() {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = (0..self.dim)
            .map(|k| Arc::new(Float64Array::from_iter_values(self.points.iter().map(|p| p.coords[k]))) as ArrayRef)
            .collect();
        Ok(Some(snapshot::encode(&[columns])?))
    }

    /// Replays the saved window (neighbour counts and cells are rebuilt on the way).
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = snapshot::decode(state)?;
        let mismatch = || SluiceError::runtime("the saved state of HOTSPOTS does not fit its current arguments");
        let [columns] = sections.as_slice() else {
            return Err(mismatch());
        };
        let arrays: Vec<&Float64Array> = columns
            .iter()
            .map(|c| c.as_primitive_opt::<Float64Type>())
            .collect::<Option<_>>()
            .ok_or_else(mismatch)?;
        if arrays.len() != self.dim || arrays.iter().any(|a| a.len() != arrays[0].len()) {
            return Err(mismatch());
        }
        self.points.clear();
        self.cells.clear();
        self.free_cells.clear();
        self.cell_ids.clear();
        self.front = 0;
        let mut values = vec![0.0; self.dim];
        for i in 0..arrays[0].len() {
            for (v, a) in values.iter_mut().zip(&arrays) {
                *v = a.value(i);
            }
            if self.points.len() >= self.config.window {
                self.evict();
            }
            self.insert(&values);
        }
        self.result = render(&self.hotspots());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{batch, check_batches, on_batch, schema};
    use super::*;
    use crate::time::Millis;
    use datafusion::arrow::array::{AsArray, Float64Array, Int32Array, StringArray};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn args(window: i64, radius: f64, min: i64) -> Vec<ScalarValue> {
        vec![
            ScalarValue::Int64(Some(window)),
            ScalarValue::Float64(Some(radius)),
            ScalarValue::Int64(Some(min)),
        ]
    }

    #[derive(serde::Deserialize)]
    struct Parsed {
        hotspots: Vec<ParsedHotspot>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    struct ParsedHotspot {
        density: f64,
        min_values: Vec<f64>,
        max_values: Vec<f64>,
    }

    #[test]
    fn two_dense_clusters_among_noise() {
        let input = schema(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("label", DataType::Utf8, true),
            Field::new("y", DataType::Float64, true),
        ]);
        let a = args(300, 0.2, 10);
        let expected = super::super::output_schema(HOTSPOTS, &a, &input).unwrap();
        let names: Vec<&str> = expected.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["x", "label", "y", "HOTSPOTS_RESULT", "ROWTIME"]);
        let mut op = super::super::build(HOTSPOTS, &a, &input).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let (mut xs, mut ys, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        let in_box = |x: f64, y: f64, b: (f64, f64, f64, f64), m: f64| {
            x >= b.0 - m && x <= b.1 + m && y >= b.2 - m && y <= b.3 + m
        };
        let a_box = (1.0, 1.5, 1.0, 1.5);
        let b_box = (5.0, 5.4, 7.0, 7.6);
        for i in 0..300 {
            let (x, y, l) = match i % 5 {
                0 | 1 => (
                    rng.random_range(a_box.0..a_box.1),
                    rng.random_range(a_box.2..a_box.3),
                    "A",
                ),
                2 | 3 => (
                    rng.random_range(b_box.0..b_box.1),
                    rng.random_range(b_box.2..b_box.3),
                    "B",
                ),
                _ => loop {
                    let (x, y) = (rng.random_range(0.0..10.0), rng.random_range(0.0..10.0));
                    if !in_box(x, y, a_box, 0.5) && !in_box(x, y, b_box, 0.5) {
                        break (x, y, "noise");
                    }
                },
            };
            xs.push(x);
            ys.push(y);
            labels.push(l);
        }
        let mut last = Millis::MIN;
        let mut results = Vec::new();
        for chunk in 0..3 {
            let r = chunk * 100..(chunk + 1) * 100;
            let b = batch(
                &input,
                vec![
                    Arc::new(Float64Array::from(xs[r.clone()].to_vec())),
                    Arc::new(StringArray::from(labels[r.clone()].to_vec())),
                    Arc::new(Float64Array::from(ys[r.clone()].to_vec())),
                ],
                r.clone().map(|i| i as Millis * 10).collect(),
            );
            let out = on_batch(op.as_mut(), b);
            check_batches(&expected, &out, &mut last);
            assert_eq!(
                out.iter().map(|b| b.num_rows()).sum::<usize>(),
                100,
                "one row per input row"
            );
            for b in &out {
                let col = b.column(3).as_string::<i32>();
                results.extend((0..b.num_rows()).map(|i| col.value(i).to_string()));
                // Input columns pass through unchanged.
                assert_eq!(b.column(1).as_string::<i32>().value(0), labels[chunk * 100]);
            }
        }
        let parsed: Parsed = serde_json::from_str(results.last().unwrap()).unwrap();
        assert_eq!(parsed.hotspots.len(), 2, "{}", results.last().unwrap());
        let bounds = |l: &str| {
            let pts: Vec<(f64, f64)> = (0..300).filter(|&i| labels[i] == l).map(|i| (xs[i], ys[i])).collect();
            let fold = |f: fn(f64, f64) -> f64, init: f64, g: fn(&(f64, f64)) -> f64| pts.iter().map(g).fold(init, f);
            (
                fold(f64::min, f64::MAX, |p| p.0),
                fold(f64::max, f64::MIN, |p| p.0),
                fold(f64::min, f64::MAX, |p| p.1),
                fold(f64::max, f64::MIN, |p| p.1),
            )
        };
        let find = |b: (f64, f64, f64, f64)| {
            parsed
                .hotspots
                .iter()
                .find(|h| (h.min_values[0] - b.0).abs() < 0.3)
                .unwrap_or_else(|| panic!("no hotspot near {b:?}: {}", results.last().unwrap()))
        };
        for l in ["A", "B"] {
            let want = bounds(l);
            let h = find(want);
            // Exactly the cluster's points: the noise stays away from the clusters.
            assert_eq!(h.min_values, vec![want.0, want.2], "{l}");
            assert_eq!(h.max_values, vec![want.1, want.3], "{l}");
            let area = (want.1 - want.0) * (want.3 - want.2);
            assert!((h.density - 120.0 / area).abs() < 1e-6, "{l}: density {}", h.density);
        }
        assert!(parsed.hotspots[0].density >= parsed.hotspots[1].density);
        // Early rows, before clusters formed, have none.
        assert_eq!(results[0], "{\"hotspots\":[]}");
    }

    /// DBSCAN from scratch over a window, for comparison.
    fn reference(points: &[Vec<f64>], radius: f64, min: usize) -> Vec<(usize, Vec<f64>, Vec<f64>)> {
        let n = points.len();
        let near =
            |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() <= radius * radius;
        let core: Vec<bool> = (0..n)
            .map(|i| (0..n).filter(|&j| near(&points[i], &points[j])).count() >= min)
            .collect();
        let mut label = vec![usize::MAX; n];
        let mut next = 0;
        for i in 0..n {
            if !core[i] || label[i] != usize::MAX {
                continue;
            }
            let mut stack = vec![i];
            label[i] = next;
            while let Some(p) = stack.pop() {
                for q in 0..n {
                    if core[q] && label[q] == usize::MAX && near(&points[p], &points[q]) {
                        label[q] = next;
                        stack.push(q);
                    }
                }
            }
            next += 1;
        }
        // Border points join every cluster with a core point within the radius.
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); next];
        for i in 0..n {
            if core[i] {
                members[label[i]].push(i);
            } else {
                let mut labels: Vec<usize> = (0..n)
                    .filter(|&j| core[j] && near(&points[i], &points[j]))
                    .map(|j| label[j])
                    .collect();
                labels.dedup();
                labels.sort();
                labels.dedup();
                for l in labels {
                    members[l].push(i);
                }
            }
        }
        let mut out: Vec<(usize, Vec<f64>, Vec<f64>)> = (0..next)
            .map(|c| {
                let members: Vec<&Vec<f64>> = members[c].iter().map(|&i| &points[i]).collect();
                let d = points[0].len();
                let lo = (0..d)
                    .map(|k| members.iter().map(|p| p[k]).fold(f64::MAX, f64::min))
                    .collect();
                let hi = (0..d)
                    .map(|k| members.iter().map(|p| p[k]).fold(f64::MIN, f64::max))
                    .collect();
                (members.len(), lo, hi)
            })
            .filter(|c| c.0 >= min)
            .collect();
        out.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        out
    }

    #[test]
    fn incremental_windows_match_dbscan_from_scratch() {
        // 1 and 2 dimensions use small stencils, 3 a larger one, 5 the cell scan.
        for dim in [1usize, 2, 3, 5] {
            let fields: Vec<Field> = (0..dim)
                .map(|k| Field::new(format!("c{k}"), DataType::Float64, true))
                .collect();
            let input = schema(fields);
            let (radius, min) = (0.6, 6);
            let mut op = HotspotsOp::new(
                HotspotsConfig::parse(&args(100, radius, min as i64), &input).unwrap(),
                &input,
            )
            .unwrap();
            let mut rng = SmallRng::seed_from_u64(dim as u64);
            // Four places, two of them busy at a time, moving over time.
            let centres: Vec<Vec<f64>> = (0..4)
                .map(|c| (0..dim).map(|k| (c * 20 + k * 3) as f64).collect())
                .collect();
            let mut window: VecDeque<Vec<f64>> = VecDeque::new();
            for t in 0..400 {
                let p: Vec<f64> = if t % 4 == 3 {
                    (0..dim).map(|_| rng.random_range(-200.0..200.0)).collect()
                } else {
                    let c = &centres[(t / 50 + t % 2) % 4];
                    c.iter().map(|x| x + rng.random_range(-1.0..1.0)).collect()
                };
                if window.len() == 100 {
                    window.pop_front();
                }
                window.push_back(p.clone());
                if op.points.len() >= 100 {
                    op.evict();
                }
                op.insert(&p);
                if t % 7 == 0 || t > 390 {
                    let mut got: Vec<(usize, Vec<f64>, Vec<f64>)> =
                        op.hotspots().into_iter().map(|h| (h.count, h.min, h.max)).collect();
                    got.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
                    let want = reference(&window.iter().cloned().collect::<Vec<_>>(), radius, min);
                    assert_eq!(got, want, "dim {dim}, row {t}");
                }
            }
            let total: usize = op.cells.iter().flatten().map(|c| c.members.len()).sum();
            assert_eq!(total, op.points.len());
            assert_eq!(op.cells.iter().flatten().count(), op.cell_ids.len());
            // Near lists are symmetric.
            for (id, c) in op.cells.iter().enumerate() {
                for &n in c.iter().flat_map(|c| c.near.iter()) {
                    assert!(op.cell(n).near.contains(&(id as u32)));
                }
            }
        }
    }

    #[test]
    fn null_rows_pass_through_and_integers_count() {
        let input = schema(vec![Field::new("n", DataType::Int32, true)]);
        let a = args(100, 0.5, 3);
        let expected = super::super::output_schema(HOTSPOTS, &a, &input).unwrap();
        let mut op = super::super::build(HOTSPOTS, &a, &input).unwrap();
        let b = batch(
            &input,
            vec![Arc::new(Int32Array::from(vec![
                Some(5),
                Some(5),
                None,
                Some(5),
                Some(9),
            ]))],
            vec![1, 2, 3, 4, 5],
        );
        let out = on_batch(op.as_mut(), b);
        let mut last = Millis::MIN;
        check_batches(&expected, &out, &mut last);
        let col = out[0].column(1).as_string::<i32>();
        assert_eq!(col.value(1), "{\"hotspots\":[]}");
        assert_eq!(col.value(2), "{\"hotspots\":[]}");
        // Three identical points: a hotspot of density 3 / 0.5.
        assert_eq!(
            col.value(3),
            "{\"hotspots\":[{\"density\":6.0,\"minValues\":[5.0],\"maxValues\":[5.0]}]}"
        );
        assert_eq!(col.value(4), col.value(3));
    }

    #[test]
    fn arguments_are_validated() {
        let input = schema(vec![Field::new("x", DataType::Float64, true)]);
        assert!(
            HotspotsConfig::parse(&args(99, 0.2, 5), &input)
                .unwrap_err()
                .contains("windowSize")
        );
        assert!(
            HotspotsConfig::parse(&args(100, 0.0, 5), &input)
                .unwrap_err()
                .contains("scanRadius")
        );
        assert!(
            HotspotsConfig::parse(&args(100, 0.2, 101), &input)
                .unwrap_err()
                .contains("minimumNumberOfPointsInAHotspot")
        );
        let strings = schema(vec![Field::new("s", DataType::Utf8, true)]);
        assert!(
            HotspotsConfig::parse(&args(100, 0.2, 5), &strings)
                .unwrap_err()
                .contains("no numeric column")
        );
    }
}
