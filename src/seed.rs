//! Seeds: every random choice of a run derives its own seed from the run's.

/// Mixes a run seed with a node (its index), an incarnation and a purpose into an
/// independent seed.
pub fn derive_seed(seed: u64, node: u32, incarnation: u64, purpose: u8) -> u64 {
    let input = [&seed.to_le_bytes()[..], &node.to_le_bytes(), &incarnation.to_le_bytes(), &[purpose]].concat();
    xxhash_rust::xxh3::xxh3_64(&input)
}
