// One image: the full picture with its objects, the object list, and tag / metadata editing.
import { useCallback, useEffect, useState } from "react";
import { P, get, post, qs, request } from "../api";
import { Overlay, colorOf, type Shape } from "../components/Overlay";
import { scalar } from "../components/Value";
import { Link } from "../router";

interface Obj extends Shape {
  geometry_type?: string;
  source: string;
  confidence: number | null;
  attributes: Record<string, unknown> | null;
}

interface Detail {
  id: number;
  file_name: string;
  width: number | null;
  height: number | null;
  objects: number;
  tags: string[];
  metadata: Record<string, unknown>;
  image_url?: string;
  objects_list: Obj[];
}

interface SimilarHit {
  [k: string]: unknown;
}

/** An image behind the login (no signed URL given): fetched with the token, shown from a blob. */
function AuthImg({ path }: { path: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let made: string | null = null;
    request(path).then((r) => r.blob()).then((b) => setUrl((made = URL.createObjectURL(b))), () => setUrl(null));
    return () => { if (made) URL.revokeObjectURL(made); };
  }, [path]);
  return url ? <img src={url} alt="" /> : <span className="placeholder-img" />;
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function AssetDetail({ project, id }: { project: string; id: number }) {
  const [a, setA] = useState<Detail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [hot, setHot] = useState<number | null>(null);
  const [tag, setTag] = useState("");
  const [key, setKey] = useState("");
  const [val, setVal] = useState("");
  const [similar, setSimilar] = useState<{ of: number; hits: SimilarHit[] | null; error?: string } | null>(null);
  const base = `${P(project)}/assets/${id}`;

  const load = useCallback(() => {
    get<Detail>(base).then(setA, (e: Error) => setError(e.message));
  }, [base]);
  useEffect(load, [load]);

  const edit = async (path: string, body: object) => {
    try {
      await post(`${P(project)}/${path}`, { ids: [id], level: "image", ...body });
      load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const findSimilar = async (objectId: number) => {
    setSimilar({ of: objectId, hits: null });
    try {
      const r = await get<unknown>(`${P(project)}/similar${qs({ object_id: objectId, k: 12 })}`);
      const hits = Array.isArray(r) ? r : ((r as { hits?: SimilarHit[] }).hits ?? (r as { items?: SimilarHit[] }).items ?? []);
      setSimilar({ of: objectId, hits });
    } catch (e) {
      setSimilar({ of: objectId, hits: [], error: (e as Error).message });
    }
  };

  if (error && !a) return <p className="error">{error}</p>;
  if (!a) return <p className="muted">loading…</p>;
  return (
    <div className="detail">
      <div className="detail-image">
        <div className="frame" style={{ aspectRatio: a.width && a.height ? `${a.width} / ${a.height}` : undefined }}>
          <img src={a.image_url ?? `${base}/image`} alt={a.file_name} />
          {a.width && a.height ? <Overlay width={a.width} height={a.height} shapes={a.objects_list} highlight={hot} labels /> : null}
        </div>
      </div>
      <div className="detail-side">
        <h2 title={a.file_name}>{a.file_name}</h2>
        <p className="muted">
          image {a.id} · {a.width}×{a.height} · {a.objects} objects ·{" "}
          <Link to={`/p/${encodeURIComponent(project)}/gallery`}>back to gallery</Link>
        </p>
        {error && <p className="error">{error}</p>}
        <section>
          <h3>Tags</h3>
          <div className="chips" data-testid="tags">
            {a.tags.map((t) => (
              <span className="chip" key={t} data-tag={t}>
                {t}
                <button type="button" aria-label={`remove tag ${t}`} onClick={() => void edit("tags", { tags: [t], action: "remove" })}>×</button>
              </span>
            ))}
            {!a.tags.length && <span className="muted">no tags</span>}
          </div>
          <form className="inline" onSubmit={(e) => { e.preventDefault(); if (tag.trim()) void edit("tags", { tags: [tag.trim()], action: "add" }).then(() => setTag("")); }}>
            <input name="tag" placeholder="new tag" value={tag} onChange={(e) => setTag(e.target.value)} />
            <button type="submit">Add tag</button>
          </form>
        </section>
        <section>
          <h3>Metadata</h3>
          <table className="kv" data-testid="metadata">
            <tbody>
              {Object.entries(a.metadata).map(([k, v]) => (
                <tr key={k} data-key={k}>
                  <th>{k}</th>
                  <td>{scalar(v)}</td>
                  <td><button type="button" onClick={() => void edit("metadata", { key: k, action: "unset" })}>unset</button></td>
                </tr>
              ))}
            </tbody>
          </table>
          <form className="inline" onSubmit={(e) => { e.preventDefault(); if (key.trim()) void edit("metadata", { key: key.trim(), value: parseValue(val), action: "set" }).then(() => { setKey(""); setVal(""); }); }}>
            <input name="meta-key" placeholder="key" value={key} onChange={(e) => setKey(e.target.value)} size={10} />
            <input name="meta-value" placeholder="value" value={val} onChange={(e) => setVal(e.target.value)} size={12} />
            <button type="submit">Set</button>
          </form>
        </section>
        <section>
          <h3>Objects</h3>
          <table className="grid-table objects">
            <thead>
              <tr><th>id</th><th>class</th><th>kind</th><th>source</th><th>confidence</th><th>attributes</th><th /></tr>
            </thead>
            <tbody>
              {a.objects_list.map((o) => (
                <tr key={o.id} data-object={o.id} onMouseEnter={() => setHot(o.id)} onMouseLeave={() => setHot(null)}
                  className={hot === o.id ? "hot" : undefined}>
                  <td>{o.id}</td>
                  <td><i className="swatch" style={{ background: colorOf(o.category) }} />{o.category ?? "–"}</td>
                  <td>{o.kind ?? o.geometry_type}</td>
                  <td>{o.source}</td>
                  <td>{o.confidence === null || o.confidence === undefined ? "–" : o.confidence.toFixed(3)}</td>
                  <td className="attrs">{o.attributes && Object.keys(o.attributes).length
                    ? Object.entries(o.attributes).map(([k, v]) => `${k}: ${scalar(v)}`).join(" · ") : "–"}</td>
                  <td><button type="button" onClick={() => void findSimilar(o.id)}>Similar</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        {similar && (
          <section data-testid="similar">
            <h3>Similar to object {similar.of}</h3>
            {similar.error && <p className="error">{similar.error}</p>}
            {similar.hits === null ? <p className="muted">searching…</p> : (
              <div className="similar">
                {similar.hits.map((h, i) => {
                  const asset = (h.image_id ?? h.asset_id) as number | undefined;
                  const score = (h.score ?? h.distance ?? h.similarity) as number | undefined;
                  const thumb = h.thumbnail_url as string | undefined;
                  return (
                    <Link key={i} to={`/p/${encodeURIComponent(project)}/assets/${asset}`} className="similar-hit">
                      {thumb ? <img src={thumb} alt="" /> : asset ? <AuthImg path={`${P(project)}/assets/${asset}/thumbnail`} /> : null}
                      <span>{String(h.category ?? "")} {score !== undefined ? scalar(score) : ""}</span>
                    </Link>
                  );
                })}
                {similar.hits.length === 0 && !similar.error && <p className="muted">nothing similar</p>}
              </div>
            )}
          </section>
        )}
      </div>
    </div>
  );
}
