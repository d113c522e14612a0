// CVAT: push the current query as an annotation task (live progress), and the project's tasks.
import { useCallback, useEffect, useState } from "react";
import { P, get, post } from "../api";
import { RunProgress } from "../components/Progress";
import { Table } from "../components/Value";

type Rec = Record<string, unknown>;

export function Cvat({ project, q }: { project: string; q: string }) {
  const [tasks, setTasks] = useState<Rec[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [query, setQuery] = useState(q);
  const [run, setRun] = useState<string | null>(null);
  const load = useCallback(() => {
    get<Rec[] | { tasks: Rec[] }>(`${P(project)}/cvat/tasks`).then((r) => setTasks(Array.isArray(r) ? r : r.tasks), (e: Error) => setError(e.message));
  }, [project]);
  useEffect(load, [load]);
  const push = async () => {
    try {
      const r = await post<{ run_id: string }>(`${P(project)}/cvat/push`, { query, name });
      setRun(r.run_id);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div className="cvat">
      {error && <p className="error">{error}</p>}
      <section>
        <h3>Push to CVAT</h3>
        <form className="inline" onSubmit={(e) => { e.preventDefault(); void push(); }}>
          <input name="task-name" placeholder="task name" value={name} onChange={(e) => setName(e.target.value)} />
          <input name="task-query" className="mono" placeholder="query" value={query} onChange={(e) => setQuery(e.target.value)} />
          <button type="submit" disabled={!name}>Push</button>
        </form>
        {run && <RunProgress key={run} project={project} runId={run} onEnd={load} />}
      </section>
      <section>
        <h3>Tasks</h3>
        {tasks && tasks.length > 0 && <Table rows={tasks} />}
        {tasks?.length === 0 && <p className="muted">no tasks pushed yet</p>}
      </section>
    </div>
  );
}
