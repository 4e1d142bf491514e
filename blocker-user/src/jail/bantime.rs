//! Ban durations, with Fail2Ban's `bantime.increment` semantics: a repeat
//! offender's ban grows with the number of its earlier bans.

use std::time::Duration;

use evalexpr::{ContextWithMutableVariables, HashMapContext, Node, Value};

/// How long a jail bans.
#[derive(Clone, Debug)]
pub struct BanTime {
    /// `None`: permanent.
    pub base: Option<Duration>,
    pub increment: Option<Increment>,
}

/// `bantime_increment`: ban time = f(base, earlier bans), capped at
/// `maxtime`, plus up to `rndtime` of random time.
#[derive(Clone, Debug)]
pub struct Increment {
    pub growth: Growth,
    pub factor: f64,
    pub maxtime: Option<Duration>,
    pub rndtime: Option<Duration>,
    /// Count earlier bans in every jail, not only this one.
    pub overalljails: bool,
    /// How far back earlier bans count.
    pub window: Duration,
}

#[derive(Clone, Debug)]
pub enum Growth {
    /// Fail2Ban's default formula: `bantime * 2^min(count, 20) * factor`.
    Doubling,
    /// `bantime * factor * multipliers[min(count, len - 1)]`.
    Multipliers(Vec<f64>),
    /// An expression over `bantime` (seconds), `count` and `factor`, never
    /// below `bantime` (as Fail2Ban's formula).
    Formula(FormulaExpr),
}

/// A compiled `formula`.
#[derive(Clone, Debug)]
pub struct FormulaExpr {
    pub source: String,
    node: Node,
}

impl FormulaExpr {
    pub fn parse(source: &str) -> Result<FormulaExpr, String> {
        let node = evalexpr::build_operator_tree(source).map_err(|e| e.to_string())?;
        let f = FormulaExpr { source: source.to_owned(), node };
        // Evaluate once so that unknown variables are caught at load time.
        f.eval(600.0, 1, 1.0)?;
        Ok(f)
    }

    fn eval(&self, bantime: f64, count: u32, factor: f64) -> Result<f64, String> {
        let mut ctx = HashMapContext::new();
        for (name, v) in [("bantime", bantime), ("count", count as f64), ("factor", factor)] {
            ctx.set_value(name.into(), Value::Float(v)).map_err(|e| e.to_string())?;
        }
        match self.node.eval_with_context(&ctx).map_err(|e| e.to_string())? {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => Err(format!("formula gave {other}, not a number")),
        }
    }
}

impl BanTime {
    pub fn fixed(base: Option<Duration>) -> BanTime {
        BanTime { base, increment: None }
    }

    /// The ban time for an address banned `earlier` times before.
    pub fn for_count(&self, earlier: u32) -> Option<Duration> {
        let base = self.base?;
        let Some(inc) = &self.increment else { return Some(base) };
        let b = base.as_secs_f64();
        let grown = if earlier == 0 {
            b
        } else {
            match &inc.growth {
                Growth::Doubling => b * f64::from(1u32 << earlier.min(20)) * inc.factor,
                Growth::Multipliers(m) => b * inc.factor * m[(earlier as usize).min(m.len() - 1)],
                Growth::Formula(f) => f.eval(b, earlier, inc.factor).unwrap_or(b).max(b),
            }
        };
        let mut secs = grown.max(1.0);
        if let Some(max) = inc.maxtime {
            secs = secs.min(max.as_secs_f64());
        }
        if let Some(rnd) = inc.rndtime {
            secs += fastrand::f64() * rnd.as_secs_f64();
        }
        Some(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(growth: Growth) -> BanTime {
        BanTime {
            base: Some(Duration::from_secs(600)),
            increment: Some(Increment {
                growth,
                factor: 1.0,
                maxtime: Some(Duration::from_secs(86_400)),
                rndtime: None,
                overalljails: false,
                window: Duration::from_secs(86_400),
            }),
        }
    }

    fn secs(b: &BanTime, n: u32) -> u64 {
        b.for_count(n).unwrap().as_secs()
    }

    #[test]
    fn doubling_like_fail2ban_default_formula() {
        let b = inc(Growth::Doubling);
        assert_eq!([0, 1, 2, 3].map(|n| secs(&b, n)), [600, 1200, 2400, 4800]);
        assert_eq!(secs(&b, 10), 86_400, "capped at maxtime");
    }

    #[test]
    fn multipliers_use_the_last_one_beyond_the_list() {
        let b = inc(Growth::Multipliers(vec![1.0, 5.0, 30.0]));
        assert_eq!([0, 1, 2, 7].map(|n| secs(&b, n)), [600, 3000, 18_000, 18_000]);
    }

    #[test]
    fn formula_is_evaluated_and_never_below_base() {
        let b = inc(Growth::Formula(FormulaExpr::parse("bantime * (count + 1)").unwrap()));
        assert_eq!([0, 1, 2].map(|n| secs(&b, n)), [600, 1200, 1800]);
        let shrink = inc(Growth::Formula(FormulaExpr::parse("bantime / 10").unwrap()));
        assert_eq!(secs(&shrink, 3), 600);
        assert!(FormulaExpr::parse("bantime * nonsense").is_err());
        assert!(FormulaExpr::parse("bantime *").is_err());
    }

    #[test]
    fn permanent_stays_permanent_and_rndtime_adds_at_most_rndtime() {
        assert_eq!(BanTime::fixed(None).for_count(3), None);
        let mut b = inc(Growth::Doubling);
        b.increment.as_mut().unwrap().rndtime = Some(Duration::from_secs(60));
        for _ in 0..50 {
            let s = secs(&b, 0);
            assert!((600..=660).contains(&s), "{s}");
        }
    }
}
