//! The pages, one module per screen.

use axum::Router;

use crate::Ui;

mod deliveries;
mod event_types;
mod imports;
mod integrations;
mod lists;
mod login;
mod mappings;
mod monitoring;
mod scheduling;
mod webhooks;

pub fn routes() -> Router<Ui> {
    Router::new()
        .merge(login::routes())
        .merge(integrations::routes())
        .merge(mappings::routes())
        .merge(monitoring::routes())
        .merge(scheduling::routes())
        .merge(lists::routes())
        .merge(imports::routes())
        .merge(webhooks::routes())
        .merge(deliveries::routes())
        .merge(event_types::routes())
}
