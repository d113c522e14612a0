// Insights of the current query: classes, tags, metadata values, resolutions and box sizes as bar
// charts, and the project's saved views (a name for a query and its charts).
import { useCallback, useEffect, useState } from "react";
import { ApiError, P, get, post, qs, send } from "../api";
import { Bars } from "../components/Charts";
import { QueryBox } from "../components/Query";
import { navigate } from "../router";

const WHICH = ["class_distribution", "tag_counts", "metadata_values", "resolution", "bbox_size"];

interface Hist {
  counts: number[];
  labels: string[];
}

interface Insights {
  images: number;
  objects: number;
  class_distribution?: { classes: { key: string; name: string; objects: number; images: number }[] };
  tag_counts?: { tags: Record<string, number>; untagged_images: number };
  metadata_values?: { keys: Record<string, { images: number; values: Record<string, number> }> };
  resolution?: { top_sizes: { width: number; height: number; images: number }[]; width: Hist; height: Hist };
  bbox_size?: { sqrt_area: Hist; coco: Record<string, number> };
}

interface View {
  name: string;
  query?: string;
  charts?: string[] | null;
  [k: string]: unknown;
}

const hist = (h?: Hist): [string, number][] => (h ? h.labels.map((l, i) => [l, h.counts[i] ?? 0] as [string, number]).filter(([, n]) => n > 0) : []);

export function InsightsPage({ project, q }: { project: string; q: string }) {
  const [data, setData] = useState<Insights | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [views, setViews] = useState<View[] | null>(null);
  const [viewsError, setViewsError] = useState<string | null>(null);
  const [name, setName] = useState("");

  useEffect(() => {
    setData(null);
    get<Insights>(`${P(project)}/insights${qs({ q, which: WHICH.join(",") })}`).then(
      (d) => { setData(d); setError(null); },
      (e) => setError(e instanceof ApiError ? e : new ApiError(0, { detail: String(e) })),
    );
  }, [project, q]);

  const loadViews = useCallback(() => {
    get<View[] | { views: View[] }>(`${P(project)}/insights/views`).then(
      (v) => setViews(Array.isArray(v) ? v : v.views),
      (e: Error) => setViewsError(e.message),
    );
  }, [project]);
  useEffect(loadViews, [loadViews]);

  const run = (text: string) => navigate(`/p/${encodeURIComponent(project)}/insights${qs({ q: text })}`);
  const save = async () => {
    if (!name.trim()) return;
    try {
      await post(`${P(project)}/insights/views`, { name: name.trim(), query: q, charts: WHICH });
      setName("");
      loadViews();
    } catch (e) {
      setViewsError((e as Error).message);
    }
  };
  const remove = async (n: string) => {
    try {
      await send("DELETE", `${P(project)}/insights/views/${encodeURIComponent(n)}`);
      loadViews();
    } catch (e) {
      setViewsError((e as Error).message);
    }
  };

  const meta = Object.entries(data?.metadata_values?.keys ?? {}).slice(0, 6);
  return (
    <div className="insights">
      <QueryBox value={q} onRun={run} error={error} />
      <aside className="views">
        <h3>Saved views</h3>
        {viewsError && <p className="error">{viewsError}</p>}
        <ul>
          {(views ?? []).map((v) => (
            <li key={v.name} data-view={v.name}>
              <a href="#" onClick={(e) => { e.preventDefault(); run(v.query ?? ""); }}>{v.name}</a>
              <code className="muted">{v.query || "(all)"}</code>
              <button type="button" aria-label={`delete view ${v.name}`} onClick={() => void remove(v.name)}>×</button>
            </li>
          ))}
          {views?.length === 0 && <li className="muted">none yet</li>}
        </ul>
        <form className="inline" onSubmit={(e) => { e.preventDefault(); void save(); }}>
          <input name="view-name" placeholder="view name" value={name} onChange={(e) => setName(e.target.value)} />
          <button type="submit">Save view</button>
        </form>
      </aside>
      {!data && !error && <p className="muted">computing…</p>}
      {data && (
        <>
          <p className="summary" data-images={data.images} data-objects={data.objects}>
            {data.images.toLocaleString()} images · {data.objects.toLocaleString()} objects
          </p>
          <div className="charts">
            <Bars title="Classes (objects)" colored data={(data.class_distribution?.classes ?? []).map((c) => [c.name, c.objects])} max={40} />
            <Bars title="Tags (images)" data={Object.entries(data.tag_counts?.tags ?? {})} />
            {meta.map(([k, v]) => (
              <Bars key={k} title={`Metadata: ${k}`} data={Object.entries(v.values)} max={15} />
            ))}
            <Bars title="Resolutions" data={(data.resolution?.top_sizes ?? []).map((s) => [`${s.width}×${s.height}`, s.images])} max={15} />
            <Bars title="Image widths" data={hist(data.resolution?.width)} />
            <Bars title="Box sizes (√area, px)" data={hist(data.bbox_size?.sqrt_area)} />
            <Bars title="Boxes by COCO size" data={Object.entries(data.bbox_size?.coco ?? {})} />
          </div>
        </>
      )}
    </div>
  );
}
