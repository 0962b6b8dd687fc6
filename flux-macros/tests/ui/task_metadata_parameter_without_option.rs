use flux::TaskMetadata;

#[flux::task]
async fn lookup(key: String, meta: TaskMetadata) -> String {
    format!("{key} {}", meta.task_id)
}

fn main() {}
