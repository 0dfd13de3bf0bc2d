//! `mysql` checks (being written).

use serde::Serialize;

use super::{Facts, ProbeContext};
use crate::config::RawCheck;
use crate::config::validate::Ctx;

#[derive(Debug, Clone, Serialize)]
pub struct Spec {}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, _raw: &RawCheck) -> Option<Spec> {
        cx.error(
            &format!("{key}.kind"),
            "mysql checks are not available in this build yet",
        );
        None
    }

    pub async fn probe(&self, _cx: &ProbeContext) -> Result<Facts, String> {
        Err("mysql checks are not available in this build yet".into())
    }
}
