//! What the orders writer's handlers receive: the service base and the limits of one order.

use crate::settings::OrderLimits;

pub type AppState = outflow_service::app::WriterState<OrderLimits>;
