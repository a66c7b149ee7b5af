//! Scripts replicate as their effects (Redis 7.0's only mode): real processes, our master with
//! our replica and a Debian replica, the master's AOF read back after a restart, and a Debian
//! master whose scripts reach our replica.

mod persist_support;

use std::path::Path;

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");

fn offset(c: &mut redis::Connection, field: &str) -> i64 {
    info_field(c, "replication", field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

fn caught_up(master: &mut redis::Connection, replica: &mut redis::Connection) -> bool {
    wait_until(20, || {
        info_field(replica, "replication", "master_link_status").as_deref() == Some("up")
            && offset(master, "master_repl_offset") == offset(replica, "slave_repl_offset")
    })
}

fn eval(c: &mut redis::Connection, script: &str, keys: &[&str], args: &[&str]) -> redis::RedisResult<redis::Value> {
    redis::cmd("EVAL").arg(script).arg(keys.len()).arg(keys).arg(args).query(c)
}

/// The scripts a master runs in these tests; returns the keys that must not reach replicas.
fn run_scripts(c: &mut redis::Connection) {
    // A lock taken and extended by its owner.
    eval(c, "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])", &["lock"], &["owner", "60000"]).unwrap();
    eval(c, "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0", &["lock"], &["owner", "90000"])
        .unwrap();
    // Non-deterministic values: replicas must get the master's, not run the script again.
    eval(c, "for i = 1, 5 do redis.call('rpush', KEYS[1], tostring(math.random())) end return redis.call('llen', KEYS[1])", &["randoms"], &[]).unwrap();
    eval(c, "redis.call('set', KEYS[1], redis.call('time')[1]) return 1", &["when"], &[]).unwrap();
    // A job queue move across types and a database switch inside the script.
    redis::cmd("ZADD").arg("delayed").arg(1).arg("j1").arg(2).arg("j2").arg(9).arg("j3").query::<()>(c).unwrap();
    eval(
        c,
        "local jobs = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1]) for _, j in ipairs(jobs) do redis.call('zrem', KEYS[1], j) redis.call('lpush', KEYS[2], j) end redis.call('select', 5) redis.call('set', 'in-db5', #jobs) return #jobs",
        &["delayed", "wait"],
        &["5"],
    )
    .unwrap();
    // An error half-way: the write before it stays, and replicates.
    redis::cmd("SET").arg("str").arg("x").query::<()>(c).unwrap();
    assert!(eval(c, "redis.call('set', 'before-error', 1) redis.call('incr', 'str') redis.call('set', 'never', 1)", &[], &[]).is_err());
    // EVALSHA and scripts inside MULTI/EXEC.
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg("return redis.call('incrby', KEYS[1], ARGV[1])").query(c).unwrap();
    redis::cmd("EVALSHA").arg(&sha).arg(1).arg("counter").arg(5).query::<i64>(c).unwrap();
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("tx")
        .arg(1)
        .cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("counter")
        .arg(2)
        .cmd("EVAL")
        .arg("redis.call('set', 'tx2', 2) redis.call('set', 'tx3', 3)")
        .arg(0)
        .query::<()>(c)
        .unwrap();
    // A read-only script writes nothing.
    eval(c, "#!lua flags=no-writes\nreturn redis.call('get', 'tx')", &[], &[]).unwrap();
}

fn aof_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir.join("appendonlydir")).unwrap().flatten() {
        text.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()));
    }
    text
}

/// Our master (with `master_args`), our replica and a Debian replica, both caught up.
struct Trio {
    master: ServerGuard,
    ours: ServerGuard,
    redis: ServerGuard,
    // Kept alive with the servers.
    _dirs: [tempfile::TempDir; 3],
}

impl Trio {
    fn start(master_args: &[&str]) -> Trio {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let master = start_server(RF, dirs[0].path(), master_args);
        let port = master.port.to_string();
        let ours = start_server(RF, dirs[1].path(), &["--replicaof", "127.0.0.1", &port]);
        let redis = start_server("redis-server", dirs[2].path(), &["--replicaof", "127.0.0.1", &port]);
        let mut c = master.conn();
        assert!(caught_up(&mut c, &mut ours.conn()) && caught_up(&mut c, &mut redis.conn()), "replicas did not connect");
        Trio { master, ours, redis, _dirs: dirs }
    }
}

#[test]
fn script_effects_reach_our_replica_a_redis_replica_and_the_aof() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let Trio { mut master, ours, redis: redis_replica, _dirs } = Trio::start(&["--appendonly", "yes"]);
    let master_dir = master.dir.clone();
    let mut c_master = master.conn();
    let mut c_ours = ours.conn();
    let mut c_redis = redis_replica.conn();

    run_scripts(&mut c_master);
    // Writes a script keeps from replicas or from the AOF.
    eval(&mut c_master, "redis.set_repl(redis.REPL_NONE) redis.call('set', 'local-only', 1)", &[], &[]).unwrap();
    eval(&mut c_master, "redis.set_repl(redis.REPL_AOF) redis.call('set', 'aof-only', 1)", &[], &[]).unwrap();
    eval(&mut c_master, "redis.set_repl(redis.REPL_REPLICA) redis.call('set', 'replicas-only', 1)", &[], &[]).unwrap();

    assert!(caught_up(&mut c_master, &mut c_ours), "our replica did not catch up");
    assert!(caught_up(&mut c_master, &mut c_redis), "the Redis replica did not catch up");
    let mut expected = dataset_of_server(&mut c_master);
    assert!(expected.keys().any(|(db, k)| *db == 5 && &k[..] == b"in-db5"), "the script's SELECT wrote to db 5");
    for only_master in ["local-only", "aof-only"] {
        assert!(expected.remove(&(0, bytes::Bytes::from(only_master))).is_some(), "{only_master} missing on the master");
    }
    let replicas_only = expected.get(&(0, bytes::Bytes::from_static(b"replicas-only"))).cloned();
    assert!(replicas_only.is_some());
    assert_eq!(dataset_of_server(&mut c_ours), expected, "our replica differs from the master");
    assert_eq!(dataset_of_server(&mut c_redis), expected, "the Redis replica differs from the master");

    // The AOF holds effects, never the scripts, and several effects in MULTI/EXEC.
    // Written by the persistence thread: wait until the last effect is in the file.
    assert!(wait_until(10, || aof_text(&master_dir).contains("aof-only")), "the AOF lacks the REPL_AOF write");
    let aof = aof_text(&master_dir);
    assert!(!aof.contains("EVAL") && !aof.contains("eval"), "scripts must not reach the AOF");
    assert!(aof.contains("MULTI") && aof.contains("EXEC"), "multi-write scripts are wrapped");
    assert!(!aof.contains("local-only") && !aof.contains("replicas-only"), "{aof}");

    // Restarted from its AOF, the master has the same data (minus what skipped the AOF).
    master.kill();
    let restarted = start_server(RF, &master_dir, &["--appendonly", "yes"]);
    let mut c_restarted = restarted.conn();
    let mut after = dataset_of_server(&mut c_restarted);
    assert!(after.remove(&(0, bytes::Bytes::from_static(b"aof-only"))).is_some());
    assert!(!after.contains_key(&(0, bytes::Bytes::from_static(b"local-only"))));
    let mut expected_after = expected.clone();
    expected_after.remove(&(0, bytes::Bytes::from_static(b"replicas-only")));
    assert_eq!(after, expected_after, "the AOF did not restore the scripts' effects");
}

#[test]
fn a_redis_masters_scripts_reach_our_replica() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let d_master = tempfile::tempdir().unwrap();
    let d_ours = tempfile::tempdir().unwrap();
    let master = start_server("redis-server", d_master.path(), &[]);
    let mut c_master = master.conn();
    let port = master.port.to_string();
    let ours = start_server(RF, d_ours.path(), &["--replicaof", "127.0.0.1", &port]);
    let mut c_ours = ours.conn();
    assert!(caught_up(&mut c_master, &mut c_ours), "our replica did not connect");
    run_scripts(&mut c_master);
    assert!(caught_up(&mut c_master, &mut c_ours), "our replica did not catch up");
    assert_eq!(dataset_of_server(&mut c_ours), dataset_of_server(&mut c_master));
    // Scripts that write are refused on the read-only replica, read-only ones run.
    let refused = eval(&mut c_ours, "return redis.call('set', 'x', 1)", &[], &[]).unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    assert!(refused.to_string().contains("You can't write against a read only replica. script:"), "{refused}");
    let refused = eval(&mut c_ours, "#!lua\nreturn 1", &[], &[]).unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    let v: i64 = redis::cmd("EVAL").arg("#!lua flags=no-writes\nreturn redis.call('exists', KEYS[1])").arg(1).arg("counter").query(&mut c_ours).unwrap();
    assert_eq!(v, 1);
}

const LIBRARY: &str = "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

#[test]
fn functions_replicate_and_dump_payloads_move_between_rf_and_redis() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let Trio { master, ours, redis: redis_replica, _dirs } = Trio::start(&[]);
    let mut c_master = master.conn();
    let mut c_ours = ours.conn();
    let mut c_redis = redis_replica.conn();

    let name: String = redis::cmd("FUNCTION").arg("LOAD").arg(LIBRARY).query(&mut c_master).unwrap();
    assert_eq!(name, "counters");
    let v: i64 = redis::cmd("FCALL").arg("bump").arg(1).arg("n").arg(5).query(&mut c_master).unwrap();
    assert_eq!(v, 5);
    assert!(caught_up(&mut c_master, &mut c_ours) && caught_up(&mut c_master, &mut c_redis));
    for replica in [&mut c_ours, &mut c_redis] {
        // FUNCTION LOAD reached the replica: read-only functions run there, writers are refused.
        let v: String = redis::cmd("FCALL_RO").arg("peek").arg(1).arg("n").query(replica).unwrap();
        assert_eq!(v, "5");
        let refused = redis::cmd("FCALL").arg("bump").arg(1).arg("n").arg(1).query::<i64>(replica).unwrap_err();
        assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    }

    // Our DUMP restores on Redis and Redis's on ours.
    let ours_payload: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c_master).unwrap();
    let d_plain = tempfile::tempdir().unwrap();
    let plain_redis = start_server("redis-server", d_plain.path(), &[]);
    let mut c_plain = plain_redis.conn();
    redis::cmd("FUNCTION").arg("RESTORE").arg(&ours_payload).query::<()>(&mut c_plain).unwrap();
    let v: i64 = redis::cmd("FCALL").arg("bump").arg(1).arg("m").arg(2).query(&mut c_plain).unwrap();
    assert_eq!(v, 2);
    let redis_payload: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c_plain).unwrap();
    redis::cmd("FUNCTION").arg("RESTORE").arg(&redis_payload).arg("FLUSH").query::<()>(&mut c_master).unwrap();
    let listed: redis::Value = redis::cmd("FUNCTION").arg("LIST").arg("WITHCODE").query(&mut c_master).unwrap();
    assert!(format!("{listed:?}").contains("register_function('bump'"), "{listed:?}");

    // DELETE and FLUSH replicate too.
    redis::cmd("FUNCTION").arg("DELETE").arg("counters").query::<()>(&mut c_master).unwrap();
    assert!(caught_up(&mut c_master, &mut c_ours) && caught_up(&mut c_master, &mut c_redis));
    for replica in [&mut c_ours, &mut c_redis] {
        let err = redis::cmd("FCALL_RO").arg("peek").arg(1).arg("n").query::<String>(replica).unwrap_err();
        assert!(err.to_string().contains("Function not found"), "{err}");
    }
}

fn fcall_peek(c: &mut redis::Connection) -> redis::RedisResult<Option<String>> {
    redis::cmd("FCALL_RO").arg("peek").arg(1).arg("n").query(c)
}

#[test]
fn functions_live_in_rdb_files_and_full_syncs_both_ways() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    // Ours saves, Redis loads the file.
    let d_ours = tempfile::tempdir().unwrap();
    let mut ours = start_server(RF, d_ours.path(), &[]);
    let mut c = ours.conn();
    redis::cmd("FUNCTION").arg("LOAD").arg(LIBRARY).query::<String>(&mut c).unwrap();
    redis::cmd("SET").arg("n").arg(7).query::<()>(&mut c).unwrap();
    redis::cmd("SAVE").query::<()>(&mut c).unwrap();
    // A replica that connects now gets the library in its full sync.
    let port = ours.port.to_string();
    let d_sync_ours = tempfile::tempdir().unwrap();
    let d_sync_redis = tempfile::tempdir().unwrap();
    let sync_ours = start_server(RF, d_sync_ours.path(), &["--replicaof", "127.0.0.1", &port]);
    let sync_redis = start_server("redis-server", d_sync_redis.path(), &["--replicaof", "127.0.0.1", &port]);
    for replica in [&sync_ours, &sync_redis] {
        let mut r = replica.conn();
        assert!(caught_up(&mut c, &mut r), "replica did not sync");
        assert_eq!(fcall_peek(&mut r).unwrap().as_deref(), Some("7"), "library missing after full sync");
    }
    ours.kill();
    let redis_from_ours = start_server("redis-server", d_ours.path(), &[]);
    let mut r = redis_from_ours.conn();
    assert_eq!(fcall_peek(&mut r).unwrap().as_deref(), Some("7"), "Redis did not load our RDB's library");

    // Redis saves, ours loads the file (and keeps it across its own restart).
    redis::cmd("FCALL").arg("bump").arg(1).arg("n").arg(1).query::<i64>(&mut r).unwrap();
    redis::cmd("SAVE").query::<()>(&mut r).unwrap();
    drop(r);
    drop(redis_from_ours);
    let mut ours_again = start_server(RF, d_ours.path(), &[]);
    let mut c = ours_again.conn();
    assert_eq!(fcall_peek(&mut c).unwrap().as_deref(), Some("8"), "we did not load Redis's RDB library");
    redis::cmd("SAVE").query::<()>(&mut c).unwrap();
    ours_again.kill();
    let ours_third = start_server(RF, d_ours.path(), &[]);
    let mut c = ours_third.conn();
    assert_eq!(fcall_peek(&mut c).unwrap().as_deref(), Some("8"));
    let stats: redis::Value = redis::cmd("FUNCTION").arg("STATS").query(&mut c).unwrap();
    assert!(format!("{stats:?}").contains("libraries_count"), "{stats:?}");
}

/// Every reply of `script` (EVAL ... 0) as text, error or value.
fn eval_text(c: &mut redis::Connection, script: &str) -> String {
    match redis::cmd("EVAL").arg(script).arg(0).query::<redis::Value>(c) {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{:?} {}", e.code(), e.detail().unwrap_or_default()),
    }
}

#[test]
fn stale_replica_rules_as_redis() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    // Both replicas follow a master that does not exist, with replica-serve-stale-data no.
    // (Made replicas once running: a stale replica refuses the PING that start-up waits for.)
    let dead_port = free_port().to_string();
    let d_ours = tempfile::tempdir().unwrap();
    let d_redis = tempfile::tempdir().unwrap();
    let ours = start_server(RF, d_ours.path(), &["--replica-serve-stale-data", "no"]);
    let redis_replica = start_server("redis-server", d_redis.path(), &["--replica-serve-stale-data", "no"]);
    for server in [&ours, &redis_replica] {
        redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&dead_port).query::<()>(&mut server.conn()).unwrap();
    }
    let scripts = [
        "return 1",
        "#!lua\nreturn 1",
        "#!lua flags=no-writes\nreturn 1",
        "#!lua flags=no-writes,allow-stale\nreturn redis.call('ping')",
        "#!lua flags=no-writes,allow-stale\nreturn redis.call('get', 'k')",
        "#!lua flags=no-writes,allow-stale\nreturn redis.pcall('get', 'k')",
    ];
    let mut c_ours = ours.conn();
    let mut c_redis = redis_replica.conn();
    for script in scripts {
        assert_eq!(eval_text(&mut c_ours, script), eval_text(&mut c_redis, script), "script {script:?}");
    }
    // They were refused, not silently run.
    assert!(eval_text(&mut c_ours, "return 1").contains("MASTERDOWN"));
}
