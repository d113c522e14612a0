// Dataset versions: the list, one version (splits, classes), a diff of two, create, freeze with live
// progress, and exports with a download once the export run ends.
import { useCallback, useEffect, useState } from "react";
import { P, download, get, post, type RunEvent } from "../api";
import { Bars } from "../components/Charts";
import { RunProgress } from "../components/Progress";
import { Table, Value, scalar } from "../components/Value";
import { Link } from "../router";

type Rec = Record<string, unknown>;
const FORMATS = ["coco", "yolo"];

function tagOf(v: Rec): string {
  return String(v.tag ?? v.name ?? "");
}

function countsOf(x: unknown): [string, number][] {
  if (Array.isArray(x))
    return x.map((r: Rec) => [String(r.name ?? r.key ?? r.split ?? r.class ?? "?"), Number(r.images ?? r.objects ?? r.count ?? 0)]);
  if (x && typeof x === "object")
    return Object.entries(x as Rec).map(([k, v]) => [k, typeof v === "number" ? v : Number((v as Rec)?.images ?? (v as Rec)?.objects ?? 0)]);
  return [];
}

export function Versions({ project, tag, q }: { project: string; tag: string | null; q: string }) {
  const [list, setList] = useState<Rec[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [form, setForm] = useState({ tag: "", query: q, split: "train=0.8,val=0.1,test=0.1" });
  const [a, setA] = useState("");
  const [b, setB] = useState("");
  const [diff, setDiff] = useState<unknown>(null);

  const load = useCallback(() => {
    get<Rec[] | { versions: Rec[] }>(`${P(project)}/versions`).then(
      (r) => setList(Array.isArray(r) ? r : r.versions),
      (e: Error) => setError(e.message),
    );
  }, [project]);
  useEffect(load, [load]);

  const create = async () => {
    try {
      await post(`${P(project)}/versions`, form);
      setForm({ ...form, tag: "" });
      load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const showDiff = async () => {
    try {
      setDiff(await get(`${P(project)}/versions/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`));
    } catch (e) {
      setDiff({ error: (e as Error).message });
    }
  };

  const tags = (list ?? []).map(tagOf);
  return (
    <div className="versions">
      {error && <p className="error">{error}</p>}
      <section>
        <h3>Versions</h3>
        {list && (
          <Table rows={list.map(({ classes: _c, annotations: _a, split_config: _s, content_hash: h, ...r }) => ({ ...r, hash: h ? String(h).slice(0, 12) : null }))} link={(r, k) => (k === "tag" || k === "name" ? <Link to={`/p/${encodeURIComponent(project)}/versions/${encodeURIComponent(tagOf(r))}`}>{tagOf(r)}</Link> : null)} />
        )}
        {list?.length === 0 && <p className="muted">no versions yet</p>}
        <form className="inline" onSubmit={(e) => { e.preventDefault(); void create(); }}>
          <input name="version-tag" placeholder="tag (v1)" value={form.tag} onChange={(e) => setForm({ ...form, tag: e.target.value })} size={8} />
          <input name="version-query" placeholder="query (all images)" className="mono" value={form.query} onChange={(e) => setForm({ ...form, query: e.target.value })} />
          <input name="version-split" value={form.split} onChange={(e) => setForm({ ...form, split: e.target.value })} />
          <button type="submit">Create draft</button>
        </form>
      </section>
      {tag && <VersionDetail key={tag} project={project} tag={tag} onChange={load} />}
      <section>
        <h3>Diff</h3>
        <form className="inline" onSubmit={(e) => { e.preventDefault(); void showDiff(); }}>
          <select value={a} onChange={(e) => setA(e.target.value)} name="diff-a"><option value="">from…</option>{tags.map((t) => <option key={t}>{t}</option>)}</select>
          <select value={b} onChange={(e) => setB(e.target.value)} name="diff-b"><option value="">to…</option>{tags.map((t) => <option key={t}>{t}</option>)}</select>
          <button type="submit" disabled={!a || !b}>Compare</button>
        </form>
        {diff !== null && <div data-testid="diff"><DiffView d={diff as Rec} /></div>}
      </section>
    </div>
  );
}

/** A diff's counts first; its lists (possibly of 100,000 names) only as their first few. */
function DiffView({ d }: { d: Rec }) {
  if (!Array.isArray(d.images_added)) return <Value v={d} />;
  const list = (k: string) => (d[k] as unknown[]) ?? [];
  const first = (k: string) => list(k).slice(0, 12).map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ");
  const rows: [string, string, number][] = [
    ["images added", "images_added", list("images_added").length],
    ["images removed", "images_removed", list("images_removed").length],
    ["images moved between splits", "images_moved", list("images_moved").length],
    ["objects relabelled", "relabelled", list("relabelled").length],
  ];
  const byClass = (k: string) => Object.entries((d[k] ?? {}) as Record<string, number>).map(([c, n]) => [c === "null" ? "(unlabeled)" : c, n] as [string, number]);
  return (
    <div className="cols">
      <table className="kv">
        <tbody>
          <tr><th>from → to</th><td>{String(d.from_tag)} → {String(d.to_tag)}</td></tr>
          {rows.map(([label, key, n]) => (
            <tr key={key} data-diff={key} data-count={n}>
              <th>{label}</th>
              <td>{n.toLocaleString()}{n ? <span className="muted"> ({first(key)}{n > 12 ? ", …" : ""})</span> : null}</td>
            </tr>
          ))}
          <tr data-diff="annotations_added" data-count={Number(d.annotations_added)}><th>objects added</th><td>{scalar(d.annotations_added)}</td></tr>
          <tr data-diff="annotations_removed" data-count={Number(d.annotations_removed)}><th>objects removed</th><td>{scalar(d.annotations_removed)}</td></tr>
        </tbody>
      </table>
      <Bars title="Objects added by class" colored data={byClass("annotations_added_by_class")} />
      <Bars title="Objects removed by class" colored data={byClass("annotations_removed_by_class")} />
    </div>
  );
}

function VersionDetail({ project, tag, onChange }: { project: string; tag: string; onChange: () => void }) {
  const [v, setV] = useState<Rec | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [run, setRun] = useState<{ id: string; kind: string } | null>(null);
  const [format, setFormat] = useState("coco");
  const [ready, setReady] = useState<string | null>(null);
  const base = `${P(project)}/versions/${encodeURIComponent(tag)}`;
  const load = useCallback(() => { get<Rec>(base).then(setV, (e: Error) => setError(e.message)); }, [base]);
  useEffect(load, [load]);

  const start = async (kind: string, path: string, body?: object) => {
    try {
      const r = await post<{ run_id: string }>(path, body);
      setReady(null);
      setRun({ id: r.run_id, kind });
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const ended = (kind: string) => (_last: RunEvent | null) => {
    load();
    onChange();
    if (kind === "export") setReady(format);
  };

  if (error) return <p className="error">{error}</p>;
  if (!v) return <p className="muted">loading {tag}…</p>;
  const { splits, classes, annotations, ...rest } = v as Rec & { splits?: unknown; classes?: unknown; annotations?: unknown };
  const frozen = Boolean(v.frozen ?? v.frozen_at ?? (v.status === "frozen" || v.state === "frozen"));
  return (
    <section className="version" data-version={tag}>
      <h3>Version {tag}</h3>
      <div className="cols">
        <Value v={rest} />
        <div>
          {splits !== undefined && <Bars title="Splits (images)" data={countsOf(splits).filter(([, n]) => n > 0)} />}
          {annotations !== undefined && <Bars title="Splits (objects)" data={countsOf(annotations).filter(([, n]) => n > 0)} />}
          {classes !== undefined && classes !== null && (
            <figure className="chart" data-chart="Classes by split">
              <figcaption>Objects per class and split</figcaption>
              {Array.isArray(classes) ? <Table rows={classes as Rec[]} /> : (
                <Table rows={Object.entries(classes as Record<string, Record<string, number>>).map(([name, bySplit]) => ({
                  class: name, ...bySplit, total: Object.values(bySplit).reduce((a, n) => a + n, 0),
                }))} />
              )}
            </figure>
          )}
        </div>
      </div>
      <div className="inline">
        {!frozen && <button type="button" onClick={() => void start("freeze", `${base}/freeze`)}>Freeze</button>}
        <select name="export-format" value={format} onChange={(e) => setFormat(e.target.value)}>{FORMATS.map((f) => <option key={f}>{f}</option>)}</select>
        <button type="button" onClick={() => void start("export", `${base}/exports`, { format })}>Export</button>
        {ready && (
          <button type="button" onClick={() => void download(`${base}/exports/${ready}`, `${project}-${tag}-${ready}.zip`)}>
            Download {ready} export
          </button>
        )}
      </div>
      {run && <RunProgress key={run.id} project={project} runId={run.id} onEnd={ended(run.kind)} />}
    </section>
  );
}
