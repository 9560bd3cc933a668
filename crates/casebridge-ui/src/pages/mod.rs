//! The pages, one module per screen.

use axum::Router;

use crate::Ui;

mod integrations;
mod login;
mod mappings;
mod scheduling;

pub fn routes() -> Router<Ui> {
    Router::new()
        .merge(login::routes())
        .merge(integrations::routes())
        .merge(mappings::routes())
        .merge(scheduling::routes())
}
