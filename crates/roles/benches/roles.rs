//! A full-tenant recompute: one policy of 50 mappings compiled once, then
//! 100,000 users of 0–5 groups each evaluated against it.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roles::{GroupFacts, GroupMatch, Lock, Mapping, Mode, Policy, Role, UserFacts};

const USERS: usize = 100_000;
const MAPPINGS: usize = 50;
/// Groups in the tenant; more than the mappings, so some memberships match nothing.
const GROUPS: usize = 80;

/// A fixed-seed xorshift: the population is the same on every run without
/// pulling in a randomness crate.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn group(i: usize) -> GroupFacts {
    GroupFacts {
        id: format!("5f0c2a8e-0000-4000-8000-{i:012}"),
        external_id: Some(format!("ad-group-{i}")),
        display_name: format!("Department {i}"),
    }
}

fn policy(mode: Mode) -> Policy {
    let roles: Vec<Role> = (0..10)
        .map(|i| Role {
            name: format!("role-{i}"),
            description: String::new(),
        })
        .collect();
    // A mix of the three match kinds, as tenants configure them.
    let mappings = (0..MAPPINGS)
        .map(|i| {
            let g = group(i);
            let group = match i % 3 {
                0 => GroupMatch::Id(g.id),
                1 => GroupMatch::ExternalId(g.external_id.unwrap_or_default()),
                _ => GroupMatch::DisplayName(g.display_name.to_uppercase()),
            };
            Mapping {
                group,
                role: format!("role-{}", i % 10),
                priority: (i % 7) as i32,
            }
        })
        .collect();
    Policy {
        roles,
        default_role: Some("role-0".into()),
        mappings,
        mode,
    }
}

fn users() -> Vec<UserFacts> {
    let catalogue: Vec<GroupFacts> = (0..GROUPS).map(group).collect();
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    (0..USERS)
        .map(|i| UserFacts {
            active: i % 20 != 0,
            groups: (0..rng.below(6))
                .map(|_| catalogue[rng.below(GROUPS)].clone())
                .collect(),
            // A few administrators pin users.
            lock: (i % 500 == 0).then(|| Lock {
                roles: vec!["role-9".into()],
            }),
        })
        .collect()
}

fn recompute(c: &mut Criterion) {
    let users = users();
    let mut group = c.benchmark_group("recompute");
    group.sample_size(10);
    group.throughput(Throughput::Elements(USERS as u64));
    for (label, mode) in [("single", Mode::Single), ("multi", Mode::Multi)] {
        let compiled = policy(mode).compile().expect("bench policy is valid");
        group.bench_function(format!("evaluate_100k_users/{label}"), |b| {
            b.iter(|| {
                for u in &users {
                    black_box(compiled.evaluate(black_box(u)));
                }
            })
        });
    }
    let p = policy(Mode::Single);
    group.throughput(Throughput::Elements(1));
    group.bench_function("compile_50_mappings", |b| {
        b.iter(|| black_box(&p).compile())
    });
    group.finish();
}

criterion_group!(benches, recompute);
criterion_main!(benches);
