import { useEffect, useState } from "react";
import { get } from "../api";
import { Link } from "../router";

interface Project {
  name: string;
  role: string;
  description?: string | null;
}

export function Projects() {
  const [list, setList] = useState<Project[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<Project[]>("/api/projects").then(setList, (e: Error) => setError(e.message));
  }, []);
  return (
    <div className="projects">
      <h2>Projects</h2>
      {error && <p className="error">{error}</p>}
      <ul>
        {(list ?? []).map((p) => (
          <li key={p.name} data-project={p.name}>
            <Link to={`/p/${encodeURIComponent(p.name)}/gallery`}>{p.name}</Link> <span className="muted">{p.role}</span>
            {p.description && <p>{p.description}</p>}
          </li>
        ))}
      </ul>
      {list?.length === 0 && <p className="muted">You have no projects; an administrator can add you (dsgen members).</p>}
    </div>
  );
}
