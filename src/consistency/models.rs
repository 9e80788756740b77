//! Ready sequential specifications (to be written).
