//! Linearizability checking (to be written).

use super::{Budget, Call, Model, Verdict};

/// Whether `calls` are linearizable with respect to `model`.
pub fn check<M: Model>(_model: &M, _calls: &[Call<M::Input, M::Output>], _budget: Budget) -> Verdict {
    Verdict::Unknown("not written yet".into())
}
