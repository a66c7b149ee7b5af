//! Shared by the drills (examples/*): a `redis` connection whose every wait is bounded.

use std::time::Duration;

use redis::Connection;

/// Connects to `addr` (host:port) with `timeout` for the connect and every read and write.
pub fn connect(addr: &str, timeout: Duration) -> redis::RedisResult<Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}
