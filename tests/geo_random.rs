//! GEO searches on random points, compared reply for reply with Debian's redis-server: the
//! same seeded points and queries on both, every kind of search (radius and box, around
//! coordinates and members, sorted, unsorted in Redis's cell order, COUNT, ANY, STORE),
//! near the poles and the antimeridian too, where the geohash cells are irregular.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn have_redis() -> bool {
    std::path::Path::new("/usr/bin/redis-server").exists()
}

fn run(c: &mut redis::Connection, args: &[String]) -> redis::Value {
    let mut cmd = redis::cmd(&args[0]);
    for a in &args[1..] {
        cmd.arg(a);
    }
    match cmd.query::<redis::Value>(c) {
        Ok(v) => v,
        Err(e) => redis::Value::SimpleString(format!("error: {e}")),
    }
}

fn point(rng: &mut StdRng) -> (f64, f64) {
    match rng.gen_range(0..4) {
        // a city-sized cluster
        0 => (13.0 + rng.gen_range(0.0..0.5), 38.0 + rng.gen_range(0.0..0.5)),
        // near the antimeridian
        1 => (if rng.gen_bool(0.5) { 179.0 + rng.gen_range(0.0..1.0) } else { -180.0 + rng.gen_range(0.0..1.0) }, rng.gen_range(-10.0..10.0)),
        // near the poles' limits
        2 => (rng.gen_range(-180.0..180.0), if rng.gen_bool(0.5) { rng.gen_range(75.0..85.05) } else { rng.gen_range(-85.05..-75.0) }),
        // anywhere
        _ => (rng.gen_range(-180.0..180.0), rng.gen_range(-85.05..85.05)),
    }
}

#[test]
fn random_geo_searches_answer_as_redis() {
    if !have_redis() {
        eprintln!("skipped: Debian's redis-server is not installed");
        return;
    }
    let theirs = spawn_redis(&[]);
    let ours = spawn_rf(&["--save", ""]);
    let (mut r, mut o) = (theirs.client(), ours.client());
    let mut rng = StdRng::seed_from_u64(0x6e0_5eed);
    let mut members = Vec::new();
    // 1,500 points in batches of 50 (a listpack-encoded key and a skiplist one)
    for key in ["small", "big"] {
        let n = if key == "small" { 100 } else { 1500 };
        for batch in 0..n / 50 {
            let mut args = vec!["GEOADD".to_string(), key.to_string()];
            for j in 0..50 {
                let (lon, lat) = point(&mut rng);
                let m = format!("m{batch}-{j}");
                args.extend([format!("{lon:.6}"), format!("{lat:.6}"), m.clone()]);
                if key == "big" {
                    members.push(m);
                }
            }
            assert_eq!(run(&mut r, &args), run(&mut o, &args), "{args:?}");
        }
    }
    let units = ["m", "km", "mi", "ft"];
    let mut compared = 0;
    let mut with_results = 0;
    for q in 0..400 {
        let key = if q % 5 == 0 { "small" } else { "big" };
        let unit = units[rng.gen_range(0..units.len())];
        let scale = match unit { "m" => 1000.0, "ft" => 3280.0, "mi" => 0.62, _ => 1.0 };
        let size_km: f64 = [1.0, 30.0, 300.0, 3000.0, 12000.0][rng.gen_range(0..5)] * rng.gen_range(0.2..1.0);
        let mut args: Vec<String> = vec!["GEOSEARCH".into(), key.into()];
        if rng.gen_bool(0.3) {
            args.extend(["FROMMEMBER".into(), members[rng.gen_range(0..members.len())].clone()]);
        } else {
            let (lon, lat) = point(&mut rng);
            args.extend(["FROMLONLAT".into(), format!("{lon:.5}"), format!("{lat:.5}")]);
        }
        if rng.gen_bool(0.5) {
            args.extend(["BYRADIUS".into(), format!("{:.3}", size_km * scale), unit.into()]);
        } else {
            let h = size_km * rng.gen_range(0.3..1.5);
            args.extend(["BYBOX".into(), format!("{:.3}", size_km * scale), format!("{:.3}", h * scale), unit.into()]);
        }
        match rng.gen_range(0..4) {
            0 => args.push("ASC".into()),
            1 => args.push("DESC".into()),
            _ => {}
        }
        if rng.gen_bool(0.3) {
            args.extend(["COUNT".into(), rng.gen_range(1..20).to_string()]);
            if rng.gen_bool(0.3) {
                args.push("ANY".into());
            }
        }
        for opt in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if rng.gen_bool(0.4) {
                args.push(opt.into());
            }
        }
        let (a, b) = (run(&mut r, &args), run(&mut o, &args));
        assert_eq!(b, a, "query {q}: {args:?}");
        compared += 1;
        if matches!(&a, redis::Value::Array(items) if !items.is_empty()) {
            with_results += 1;
        }
        // the same search stored, then the stored set compared
        if q % 10 == 0 {
            let mut store: Vec<String> = vec!["GEOSEARCHSTORE".into(), "dst".into()];
            store.extend(args[1..].iter().filter(|a| !a.starts_with("WITH")).cloned());
            if q % 20 == 0 {
                store.push("STOREDIST".into());
            }
            assert_eq!(run(&mut o, &store), run(&mut r, &store), "{store:?}");
            let read = ["ZRANGE", "dst", "0", "-1", "WITHSCORES"].map(String::from);
            assert_eq!(run(&mut o, &read), run(&mut r, &read), "stored by {store:?}");
        }
    }
    assert_eq!(compared, 400);
    println!("{with_results} of 400 searches found points");
    // the comparison means something only if many searches find points
    assert!(with_results > 100, "only {with_results} searches found anything");
}
