//! rosbag2's `metadata.yaml` beside a finished record, so that the folder opens as a rosbag2 bag (`rosbags` reads only
//! bags, not bare MCAP files). Version 9 of the format, as rosbag2 on Jazzy writes it, with the keys rosbags reads.

use std::path::Path;

use serde::Serialize;

use crate::error::RecordError;

/// One topic of the record and how many messages it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicCount {
    pub topic: String,
    pub msg_type: String,
    pub count: u64,
}

#[derive(Serialize)]
struct Metadata<'a> {
    rosbag2_bagfile_information: Info<'a>,
}

#[derive(Serialize)]
struct Info<'a> {
    version: u32,
    storage_identifier: &'static str,
    duration: Nanoseconds,
    starting_time: SinceEpoch,
    message_count: u64,
    topics_with_message_count: Vec<TopicWithCount<'a>>,
    compression_format: &'static str,
    compression_mode: &'static str,
    relative_file_paths: Vec<&'a str>,
    files: Vec<FileInfo<'a>>,
    custom_data: std::collections::BTreeMap<String, String>,
    ros_distro: &'static str,
}

#[derive(Serialize)]
struct Nanoseconds {
    nanoseconds: u64,
}

#[derive(Serialize)]
struct SinceEpoch {
    nanoseconds_since_epoch: u64,
}

#[derive(Serialize)]
struct TopicWithCount<'a> {
    topic_metadata: TopicMetadata<'a>,
    message_count: u64,
}

#[derive(Serialize)]
struct TopicMetadata<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    msg_type: &'a str,
    serialization_format: &'static str,
    offered_qos_profiles: Vec<()>,
    type_description_hash: &'static str,
}

#[derive(Serialize)]
struct FileInfo<'a> {
    path: &'a str,
    starting_time: SinceEpoch,
    duration: Nanoseconds,
    message_count: u64,
}

/// Write `metadata.yaml` in the folder of `mcap_path`.
pub fn write_metadata(
    mcap_path: &Path,
    topics: &[TopicCount],
    start_ns: u64,
    duration_ns: u64,
) -> Result<(), RecordError> {
    let name = mcap_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RecordError::NotARecord {
            path: mcap_path.to_owned(),
            reason: "the file name is not UTF-8".into(),
        })?;
    let message_count = topics.iter().map(|t| t.count).sum();
    let mut topics_with_message_count: Vec<TopicWithCount> = topics
        .iter()
        .map(|t| TopicWithCount {
            topic_metadata: TopicMetadata {
                name: &t.topic,
                msg_type: &t.msg_type,
                serialization_format: "cdr",
                offered_qos_profiles: Vec::new(),
                type_description_hash: "",
            },
            message_count: t.count,
        })
        .collect();
    topics_with_message_count.sort_by(|a, b| a.topic_metadata.name.cmp(b.topic_metadata.name));
    let metadata = Metadata {
        rosbag2_bagfile_information: Info {
            version: 9,
            storage_identifier: "mcap",
            duration: Nanoseconds {
                nanoseconds: duration_ns,
            },
            starting_time: SinceEpoch {
                nanoseconds_since_epoch: start_ns,
            },
            message_count,
            topics_with_message_count,
            compression_format: "",
            compression_mode: "",
            relative_file_paths: vec![name],
            files: vec![FileInfo {
                path: name,
                starting_time: SinceEpoch {
                    nanoseconds_since_epoch: start_ns,
                },
                duration: Nanoseconds {
                    nanoseconds: duration_ns,
                },
                message_count,
            }],
            custom_data: Default::default(),
            ros_distro: "jazzy",
        },
    };
    let path = mcap_path.with_file_name("metadata.yaml");
    let text = serde_yaml::to_string(&metadata).map_err(|e| RecordError::Io {
        what: "cannot encode",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, text).map_err(|source| RecordError::Io {
        what: "cannot write",
        path,
        source,
    })
}
