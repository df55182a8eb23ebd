//! `stowaway init`'s hidden chunker and pack size options (for benchmarks).

use crate::util::Env;

#[test]
fn hidden_chunk_and_pack_sizes_reach_the_config_and_the_chunker() {
    let env = Env::new();
    let src = env.dir("src");
    // 64 KiB that no chunker can split into equal pieces.
    let data: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("file"), data).unwrap();
    env.ok(&[
        "init",
        "--chunk-min",
        "128",
        "--chunk-avg",
        "256",
        "--chunk-max",
        "1024",
        "--pack-size",
        "65536",
    ]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.repo.join("config")).unwrap()).unwrap();
    let chunker = &config["chunker"];
    assert_eq!(
        (
            &chunker["min_size"],
            &chunker["avg_size"],
            &chunker["max_size"]
        ),
        (&128.into(), &256.into(), &1024.into()),
        "{config}"
    );
    assert_eq!(config["pack_size"], 65_536, "{config}");

    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    let stats = env.json(&["stats", "--json"]);
    let blobs = stats["data_blobs"].as_u64().unwrap();
    assert!(
        (64..=512).contains(&blobs),
        "64 KiB in chunks of 128..1024 B: {stats}"
    );

    let help = env.ok(&["init", "--help"]);
    assert!(
        !help.contains("chunk-min") && !help.contains("pack-size"),
        "{help}"
    );
}

#[test]
fn inconsistent_chunk_sizes_are_refused() {
    let env = Env::new();
    let err = env.fail(&["init", "--chunk-min", "4096", "--chunk-avg", "1024"]);
    assert!(err.contains("chunk sizes 4096/1024/"), "{err}");
    assert!(!env.repo.join("config").exists());
}
