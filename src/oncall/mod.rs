//! The on-call rota: people, shifts with primary and assistant layers, the holiday calendar, temporary schedules and overrides (being written).

use serde::{Deserialize, Serialize};

use crate::config::validate::Ctx;

/// `[oncall]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOncall {}

/// The validated rota.
#[derive(Debug, Clone, Serialize)]
pub struct Rota {}

pub(crate) fn validate(cx: &mut Ctx, raw: Option<RawOncall>) -> Option<Rota> {
    raw.map(|_| {
        cx.error("oncall", "the rota is being written");
        Rota {}
    })
}
