//! Transactional checking (to be written).
