//! A bounded cache of metadata blocks (inode clusters, B+tree blocks, directory blocks),
//! keyed by device byte offset and length, evicting the oldest entry first once its byte
//! budget is spent. File data is never cached: it is read straight into the caller's buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

pub(crate) type Block = Arc<Vec<u8>>;

pub(crate) struct BlockCache {
    map: HashMap<(u64, u64), Block>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
    budget: usize,
}

impl BlockCache {
    pub(crate) fn new(budget: usize) -> Self {
        BlockCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    pub(crate) fn get(&self, offset: u64, len: u64) -> Option<Block> {
        self.map.get(&(offset, len)).cloned()
    }

    pub(crate) fn insert(&mut self, offset: u64, data: Block) {
        let key = (offset, data.len() as u64);
        if data.len() > self.budget || self.map.contains_key(&key) {
            return;
        }
        self.bytes += data.len();
        self.map.insert(key, data);
        self.order.push_back(key);
        while self.bytes > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(d) = self.map.remove(&old) {
                self.bytes -= d.len();
            }
        }
    }

    /// Bytes held (block payloads only).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
