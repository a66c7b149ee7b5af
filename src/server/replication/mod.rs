//! Master/replica replication (PSYNC2).
