//! What the inventory writer's handlers receive: the service base only.

pub type AppState = outflow_service::app::WriterState<()>;
