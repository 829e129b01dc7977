//! Broker faults injected through the mock cluster: failing requests, dropped connections,
//! leaders moving, every broker down for a while. The source rides them out (librdkafka's
//! retries, and its own for metadata and offset queries) and reads every record once.

use std::time::Duration;

use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr::{
    RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
};
use trendflow_core::metrics::Metrics;
use trendflow_core::{EpochPlan, Source};
use trendflow_kafka::testkit::{
    CollectedRecord, CollectingSender, GeneratedPost, MockKafka, generate_posts, read_until_idle,
};
use trendflow_kafka::{KafkaSource, KafkaSourceOptions, StartingOffsets};

const T0: i64 = 1_618_466_405_000;

/// Plans an epoch; panics when it has no data.
async fn plan(source: &mut KafkaSource, epoch: u64) -> Vec<u8> {
    match source.plan_epoch(epoch).await.unwrap() {
        EpochPlan::Input(plan) => plan,
        other => panic!("epoch {epoch}: {other:?}"),
    }
}

#[tokio::test]
async fn broker_faults_are_survived_and_every_record_read_once() {
    let kafka = MockKafka::start(3);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(400, 4, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let options = KafkaSourceOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topics: vec!["posts".into()],
        starting_offsets: StartingOffsets::Earliest,
        max_offsets_per_trigger: Some(40),
        poll_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let mut source = KafkaSource::new(options, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    let cluster = kafka.cluster();

    // Epoch 0: no fault.
    let p = plan(&mut source, 0).await;
    source.read_epoch(0, &p, &mut out).await.unwrap();

    // Epoch 1: fetches fail (not the leader, a dropped connection, a timeout).
    let p = plan(&mut source, 1).await;
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    source.read_epoch(1, &p, &mut out).await.unwrap();

    // Epoch 2: every partition's leader moves to another broker between plan and read.
    let p = plan(&mut source, 2).await;
    for partition in 0..4 {
        cluster
            .partition_leader("posts", partition, Some(partition % 3 + 1))
            .unwrap();
    }
    source.read_epoch(2, &p, &mut out).await.unwrap();

    // Epoch 3: offset and metadata queries fail while it is planned.
    cluster.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ],
    );
    cluster.request_errors(RDKafkaApiKey::Metadata, &[RD_KAFKA_RESP_ERR__TRANSPORT]);
    let p = plan(&mut source, 3).await;
    source.read_epoch(3, &p, &mut out).await.unwrap();

    // Epoch 4: every broker goes down once the epoch is planned and comes back a second
    // later, while the epoch is being read.
    let p = plan(&mut source, 4).await;
    cluster.broker_down(-1).unwrap();
    let brokers_back = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.broker_up(-1).unwrap();
    };
    let (read, ()) = tokio::join!(source.read_epoch(4, &p, &mut out), brokers_back);
    read.unwrap();

    // The rest, without faults.
    read_until_idle(&mut source, 5, &mut out).await.unwrap();

    let mut records = out.records();
    records.sort();
    let mut expected: Vec<CollectedRecord> = Vec::new();
    let mut next_offset = [0i64; 4];
    for p in &posts {
        let offset = &mut next_offset[p.partition as usize];
        expected.push(CollectedRecord {
            origin: format!("kafka:posts/{}", p.partition),
            offset: *offset,
            line: p.line(),
        });
        *offset += 1;
    }
    expected.sort();
    assert_eq!(records, expected);
}
