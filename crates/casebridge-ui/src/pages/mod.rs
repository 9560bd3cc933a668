//! The pages, one module per screen.

use axum::Router;

use crate::Ui;

mod deliveries;
mod event_types;
mod integrations;
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
        .merge(webhooks::routes())
        .merge(deliveries::routes())
        .merge(event_types::routes())
}
