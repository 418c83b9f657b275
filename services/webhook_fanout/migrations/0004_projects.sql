-- Projects (projects/): which projects list a repository, from project.created /
-- project.updated, so an event naming only its repo (release.decided, commit.verified,
-- scan.*) reaches the subscriptions filtered to those projects. Repos are kept lower case:
-- owner/name compares case-insensitively.

CREATE TABLE project_repos (
    repo text NOT NULL,
    project_id text NOT NULL,
    PRIMARY KEY (repo, project_id)
);
CREATE INDEX project_repos_by_project ON project_repos (project_id);
