// Models: the list, and one model version's metrics, training curves, PR curves, confusion matrix
// and lineage (the dataset version it learned from, its parent, its children).
import { useEffect, useState } from "react";
import { P, get } from "../api";
import { Heatmap, Lines, type Series } from "../components/Charts";
import { Table, Value } from "../components/Value";
import { Link } from "../router";

type Rec = Record<string, unknown>;

const refOf = (m: Rec) => String(m.human_id ?? m.ref ?? m.name ?? m.id ?? "");

export function Models({ project, refName }: { project: string; refName: string | null }) {
  const [list, setList] = useState<Rec[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<Rec[] | { models: Rec[] }>(`${P(project)}/models`).then((r) => setList(Array.isArray(r) ? r : r.models), (e: Error) => setError(e.message));
  }, [project]);
  return (
    <div className="models">
      {error && <p className="error">{error}</p>}
      <section>
        <h3>Models</h3>
        {list && list.length > 0 && (
          <Table rows={list.map(({ training_config: _t, incremental_info: _i, artifacts: _a, ...r }) => r)} link={(r, k) => (k === "human_id" || k === "ref" ? <Link to={`/p/${encodeURIComponent(project)}/models/${encodeURIComponent(refOf(r))}`}>{String(r[k])}</Link> : null)} />
        )}
        {list?.length === 0 && <p className="muted">no models yet (train one: dsgen train)</p>}
      </section>
      {refName && <ModelDetail key={refName} project={project} refName={refName} />}
    </div>
  );
}

/** Training curves: one chart of losses and one of the other numeric columns, by epoch. */
function epochSeries(epochs: Rec[]): { losses: Series[]; metrics: Series[] } {
  const keys = [...new Set(epochs.flatMap((e) => Object.keys((e.metrics as Rec) ?? e)))].filter((k) => k !== "epoch");
  const row = (e: Rec) => ((e.metrics as Rec) ?? e);
  const series = (k: string): Series => ({
    name: k,
    points: epochs.map((e, i) => [Number(e.epoch ?? i + 1), Number(row(e)[k])] as [number, number]).filter(([, y]) => Number.isFinite(y)),
  });
  const numeric = keys.map(series).filter((s) => s.points.length > 0);
  return { losses: numeric.filter((s) => /loss/i.test(s.name)), metrics: numeric.filter((s) => !/loss|lr|time/i.test(s.name)) };
}

function prSeries(pr: unknown): Series[] {
  if (!pr) return [];
  const entries: [string, Rec][] = Array.isArray(pr)
    ? (pr as Rec[]).map((c) => [String(c.class ?? c.name ?? c.category ?? "?"), c])
    : Object.entries(pr as Record<string, Rec>);
  return entries.flatMap(([name, c]) => {
    const r = (c.recall ?? c.r) as number[] | undefined;
    const p = (c.precision ?? c.p) as number[] | undefined;
    return r && p ? [{ name, points: r.map((x, i) => [x, p[i]] as [number, number]) }] : [];
  });
}

function ModelDetail({ project, refName }: { project: string; refName: string }) {
  const [m, setM] = useState<Rec | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<Rec>(`${P(project)}/models/${encodeURIComponent(refName)}`).then(setM, (e: Error) => setError(e.message));
  }, [project, refName]);
  if (error) return <p className="error">{error}</p>;
  if (!m) return <p className="muted">loading {refName}…</p>;
  const { epochs, evaluations, children: kids, lineage, summary: inner, ...rest } = m as Rec & {
    epochs?: Rec[]; evaluations?: Rec[] | Rec; children?: unknown[]; lineage?: Rec; summary?: Rec;
  };
  const summary: Rec = inner ?? rest;
  const curves = epochSeries(epochs ?? []);
  const evals: Rec[] = Array.isArray(evaluations) ? evaluations : evaluations ? [evaluations] : [];
  const link = (to: string, label: unknown) => <Link to={to}>{String(label)}</Link>;
  const lin = lineage ?? {};
  const dv = lin.dataset_version ?? summary.dataset_version;
  const parent = lin.parent ?? summary.parent;
  const children = (lin.children ?? kids ?? []) as unknown[];
  const { metrics, training_config: _cfg, incremental_info: _inc, artifacts: _art, ...facts } = summary;
  return (
    <section className="model" data-model={refName}>
      <h3>Model {refName}</h3>
      <div className="cols">
        <div>
          <Value v={facts} />
          {metrics !== null && metrics !== undefined && (<><h4>Metrics</h4><Value v={metrics} /></>)}
          <h4>Lineage</h4>
          <ul className="lineage">
            <li>dataset version: {dv ? link(`/p/${encodeURIComponent(project)}/versions/${encodeURIComponent(String((dv as Rec).tag ?? dv))}`, (dv as Rec).tag ?? dv) : "–"}</li>
            <li>parent: {parent ? link(`/p/${encodeURIComponent(project)}/models/${encodeURIComponent(String((parent as Rec).ref ?? parent))}`, (parent as Rec).ref ?? parent) : "–"}</li>
            <li>children: {children.length ? children.map((c, i) => <span key={i}>{link(`/p/${encodeURIComponent(project)}/models/${encodeURIComponent(String((c as Rec).ref ?? c))}`, (c as Rec).ref ?? c)} </span>) : "–"}</li>
          </ul>
        </div>
        <div className="charts">
          <Lines title="Training losses" series={curves.losses} xLabel="epoch" />
          <Lines title="Validation metrics" series={curves.metrics} xLabel="epoch" />
        </div>
      </div>
      {evals.map((ev, i) => {
        const { pr_curves, pr_curve, confusion, confusion_matrix, confusion_names, charts, per_class, parent: evParent, ...numbers } = ev as Rec;
        const conf = (confusion as Rec | undefined) ?? (confusion_matrix ? { matrix: confusion_matrix, names: confusion_names } : undefined);
        const pngs = Object.entries((charts ?? {}) as Record<string, string>);
        const pr = prSeries(pr_curves ?? pr_curve);
        return (
          <div key={i} className="evaluation" data-evaluation={String(ev.id ?? i)}>
            <h4>Evaluation on {String(ev.dataset_version ?? "?")} / {String(ev.split ?? "")}</h4>
            <div className="cols">
              <div>
                <Value v={numbers} />
                {evParent !== null && evParent !== undefined && (<><h4>Against the parent</h4><Value v={evParent} /></>)}
              </div>
              {pr.length > 0 && <Lines title="Precision–recall" series={pr} xLabel="recall" yLabel="precision" square />}
              {conf && Array.isArray(conf.matrix) && (
                <Heatmap title="Confusion matrix" names={(conf.names ?? conf.labels ?? []) as string[]} matrix={conf.matrix as number[][]} />
              )}
              {pngs.map(([name, url]) => (
                <figure key={name} className="chart" data-chart={name}>
                  <figcaption>{name.replace(/_/g, " ")}</figcaption>
                  <img src={url} alt={name} className="chart-png" />
                </figure>
              ))}
            </div>
            {per_class !== null && per_class !== undefined && (<details><summary>Per class</summary><Value v={per_class} /></details>)}
          </div>
        );
      })}
    </section>
  );
}
