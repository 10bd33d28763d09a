//! Session resources as facts of the session log: created with the session, added, token
//! rotated and removed through `decide`, folded into `SessionState::resources` and rendered
//! without their sealed tokens.

mod support;

use managed_agents_core::ids::{FileId, ResourceId};
use managed_agents_core::resource::{Resource, MAX_FILE_RESOURCES};
use managed_agents_core::session::{
    decide, fold, Command, Created, Fact, Rejection, Sequential, SessionRecord, SessionState,
};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::SealedSecret;
use serde_json::json;
use support::*;

fn rid(n: usize) -> ResourceId {
    ResourceId::parse(&format!("sesrsc_01r{n}")).expect("resource id")
}

fn file(n: usize) -> Resource {
    let file_id = FileId::parse(&format!("file_01f{n}")).expect("file id");
    Resource::File {
        id: rid(n),
        mount_path: format!("/mnt/session/uploads/{file_id}"),
        file_id,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn repo(n: usize) -> Resource {
    Resource::GithubRepository {
        id: rid(n),
        url: "https://github.com/o/repo".into(),
        mount_path: "/workspace/repo".into(),
        checkout: None,
        authorization_token: Some(SealedSecret("SEALED-ONE".into())),
        created_at: at(0),
        updated_at: at(0),
    }
}

fn created_with(resources: Vec<Resource>) -> SessionRecord {
    Fact::Created(Box::new(Created {
        resources,
        ..config()
    }))
    .into()
}

fn run(
    given: &[SessionRecord],
    when: Command,
) -> Result<(Vec<SessionRecord>, SessionState), Rejection> {
    let mut state = fold(given);
    let records = decide(
        &state,
        when,
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )?;
    for record in &records {
        // Every fact survives the stored encoding.
        let decoded = SessionRecord::decode(&record.encode()).expect("decodes");
        assert_eq!(&decoded, record);
        assert!(!record.is_public(), "resource changes are internal facts");
        state.apply(record);
    }
    Ok((records, state))
}

fn ids(state: &SessionState) -> Vec<String> {
    state
        .resources
        .iter()
        .filter_map(|r| r.id().map(|id| id.to_string()))
        .collect()
}

#[test]
fn resources_are_added_rotated_and_removed() {
    let given = vec![created_with(vec![file(1), repo(2)])];
    assert_eq!(ids(&fold(&given)), ["sesrsc_01r1", "sesrsc_01r2"]);

    let (_, state) = run(&given, Command::AddResource(Box::new(file(3)))).expect("added");
    assert_eq!(ids(&state), ["sesrsc_01r1", "sesrsc_01r2", "sesrsc_01r3"]);
    assert_eq!(state.updated_at, Timestamp::from_millis(NOW));
    let rendered = state.render(Timestamp::from_millis(NOW)).expect("session");
    assert_eq!(rendered["resources"][2]["id"], "sesrsc_01r3");
    assert_eq!(rendered["resources"][2]["type"], "file");

    let rotate = Command::RotateResourceToken {
        id: rid(2),
        authorization_token: SealedSecret("SEALED-TWO".into()),
    };
    let (records, state) = run(&given, rotate).expect("rotated");
    assert!(String::from_utf8_lossy(&records[0].encode()).contains("SEALED-TWO"));
    match state.resource(&rid(2)).expect("still there") {
        Resource::GithubRepository {
            authorization_token,
            updated_at,
            created_at,
            ..
        } => {
            assert_eq!(
                authorization_token,
                &Some(SealedSecret("SEALED-TWO".into()))
            );
            assert_eq!(*updated_at, Timestamp::from_millis(NOW));
            assert_eq!(*created_at, at(0));
        }
        other => panic!("{other:?}"),
    }
    let rendered = state.render(Timestamp::from_millis(NOW)).expect("session");
    assert!(!rendered.to_string().contains("SEALED"), "{rendered}");
    assert_eq!(
        rendered["resources"][1]["updated_at"],
        json!(Timestamp::from_millis(NOW).to_string())
    );

    let (_, state) = run(&given, Command::RemoveResource(rid(1))).expect("removed");
    assert_eq!(ids(&state), ["sesrsc_01r2"]);
}

#[test]
fn resource_commands_are_validated() {
    let given = vec![created_with(vec![file(1), repo(2)])];
    let status = |given: &[SessionRecord], when| {
        run(given, when)
            .map(|_| ())
            .map_err(|r| (r.status(), r.to_string()))
    };

    assert_eq!(
        status(&given, Command::RemoveResource(rid(9)))
            .unwrap_err()
            .0,
        404
    );
    let rotate_file = Command::RotateResourceToken {
        id: rid(1),
        authorization_token: SealedSecret("x".into()),
    };
    let (code, message) = status(&given, rotate_file).unwrap_err();
    assert_eq!(code, 400);
    assert!(message.contains("authorization_token"), "{message}");
    assert_eq!(
        status(&given, Command::AddResource(Box::new(file(1))))
            .unwrap_err()
            .0,
        409
    );

    let mut archived_log = given.clone();
    archived_log.push(archived());
    let (code, message) =
        status(&archived_log, Command::AddResource(Box::new(file(3)))).unwrap_err();
    assert_eq!(
        (code, message.contains("archived")),
        (409, true),
        "{message}"
    );
    assert_eq!(
        status(&archived_log, Command::RemoveResource(rid(1)))
            .unwrap_err()
            .0,
        409
    );
    let mut terminated_log = given.clone();
    terminated_log.push(terminated());
    let (code, message) =
        status(&terminated_log, Command::AddResource(Box::new(file(3)))).unwrap_err();
    assert_eq!(
        (code, message.contains("terminated")),
        (409, true),
        "{message}"
    );

    assert_eq!(
        status(&[], Command::AddResource(Box::new(file(3))))
            .unwrap_err()
            .0,
        404
    );

    let full = vec![created_with((0..MAX_FILE_RESOURCES).map(file).collect())];
    let (code, message) = status(
        &full,
        Command::AddResource(Box::new(file(MAX_FILE_RESOURCES))),
    )
    .unwrap_err();
    assert_eq!(code, 400);
    assert!(message.contains("at most 999 file resources"), "{message}");
    assert!(status(
        &full,
        Command::AddResource(Box::new(repo(MAX_FILE_RESOURCES)))
    )
    .is_ok());
    let too_many = Command::Create {
        created: Box::new(Created {
            resources: (0..=MAX_FILE_RESOURCES).map(file).collect(),
            ..config()
        }),
        initial_events: Vec::new(),
    };
    assert_eq!(status(&[], too_many).unwrap_err().0, 400);
}
