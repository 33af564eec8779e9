//! The bcrypt hashes of `basic_auth_users`. The work of verifying a password is written in
//! its hash (the cost), so a hash is checked by reading it, never by running it.

use std::str::FromStr;

/// The highest cost accepted. Each step doubles the work: cost 10 takes tens of
/// milliseconds of one core per check, 14 about a second, 31 (the format's limit) days.
/// Above 14 a first scrape, and every wrong password, holds a core for seconds and nears
/// Prometheus' default 10 s scrape timeout on a throttled container; `htpasswd -B` writes
/// cost 5 and exporter-toolkit's documentation 10.
pub const MAX_COST: u32 = 14;

/// The least cost bcrypt itself allows.
const MIN_COST: u32 = 4;

/// The cost of `hash`, or why it is refused, in words that do not repeat the hash.
pub fn cost(hash: &str) -> Result<u32, String> {
    let parts = bcrypt::HashParts::from_str(hash).map_err(|_| "not a bcrypt hash".to_string())?;
    match parts.get_cost() {
        c if c < MIN_COST => Err(format!(
            "bcrypt cost {c} is below {MIN_COST}, the least bcrypt allows"
        )),
        c if c > MAX_COST => Err(format!(
            "bcrypt cost {c} is above {MAX_COST}, the most accepted"
        )),
        c => Ok(c),
    }
}

/// A well-formed hash of `cost` that no known password matches (salt and digest are
/// exporter-toolkit's dummy's). Unknown users are verified against it so that they cost the
/// same bcrypt work as a wrong password and their names cannot be told apart by timing.
pub fn dummy(cost: u32) -> String {
    format!("$2b${cost:02}$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cost_without_running_it() {
        assert_eq!(cost(&dummy(MAX_COST)), Ok(MAX_COST));
        assert_eq!(cost(&dummy(MIN_COST)), Ok(MIN_COST));
        // Cost 31 would take days to verify: refused at once.
        let err = cost(&dummy(31)).unwrap_err();
        assert_eq!(err, "bcrypt cost 31 is above 14, the most accepted");
        assert_eq!(
            cost(&dummy(3)).unwrap_err(),
            "bcrypt cost 3 is below 4, the least bcrypt allows"
        );
        for malformed in [
            "plaintext",
            "$2b$xx$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
            "$2b$10$short",
        ] {
            assert_eq!(
                cost(malformed).unwrap_err(),
                "not a bcrypt hash",
                "{malformed}"
            );
        }
    }
}
