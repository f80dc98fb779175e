//! The short form of the chaos run, in the test suite: about 300 orders
//! while 8 faults hit PostgreSQL, Kafka, Connect and a consumer (a fixed
//! seed, so the same schedule each time), then every invariant must hold.

use std::time::Duration;

use outflow_chaos::{component::Component, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn three_hundred_orders_through_eight_faults_keep_every_invariant() {
    let config = Config {
        orders: 300,
        rate: None,
        faults: 8,
        seed: 11,
        required: vec![Component::Postgres, Component::Kafka, Component::Connect, Component::PaymentsConsumer],
        pool: Component::deployed(),
        freeze: (Duration::from_secs(5), Duration::from_secs(30)),
        gap: (Duration::from_secs(2), Duration::from_secs(5)),
    };
    let report = outflow_chaos::run(config).await.unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert!(report.held(), "{report}");
    assert_eq!(report.orders, 300);
    assert!(report.faults.iter().any(|f| f.component == Component::Postgres), "no PostgreSQL fault: {report}");
}
