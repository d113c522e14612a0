// The gallery: a query's images in a virtual grid. Only the rows in view (and a few around) are in
// the DOM, and pages of up to 500 are fetched by keyset (`after`) as the view nears the end of what
// is loaded, so 100,000 images cost what a screenful does. Click selects, shift-click a range.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { ApiError, P, get, post, qs } from "../api";
import { Overlay, type Shape } from "../components/Overlay";
import { QueryBox } from "../components/Query";
import { Link, navigate } from "../router";

export interface Item {
  id: number;
  file_name: string;
  width: number | null;
  height: number | null;
  objects: number;
  thumbnail_url?: string;
  image_url?: string;
  shapes?: Shape[] | null;
}

interface Page {
  items: Item[];
  next_after: number | null;
  total: number | null;
}

const CELL = 200; // px: thumbnail box 180 + gaps
const CAPTION = 24;
const ROW = CELL + CAPTION;
const OVERSCAN = 2; // rows above and below the view
const FIRST_PAGE = 120;
const PAGE = 500;

// What benchmarks/bench_web.py reads: when the first page's cells and the first thumbnail showed.
let firstThumbMarked = false;
let firstCellsMarked = false;

export function Thumb({ item, project }: { item: Item; project: string }) {
  const src = item.thumbnail_url ?? `${P(project)}/assets/${item.id}/thumbnail`;
  return (
    <div className="thumb">
      <img
        src={src}
        alt={item.file_name}
        decoding="async"
        draggable={false}
        onLoad={() => {
          if (!firstThumbMarked) {
            firstThumbMarked = true;
            performance.mark("dsgen:first-thumbnail");
          }
        }}
      />
      {item.width && item.height && item.shapes?.length ? (
        <Overlay width={item.width} height={item.height} shapes={item.shapes} />
      ) : null}
    </div>
  );
}

export function Gallery({ project, q }: { project: string; q: string }) {
  const [items, setItems] = useState<Item[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [total, setTotal] = useState<number | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [anchor, setAnchor] = useState<number | null>(null);
  const [tagText, setTagText] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const [view, setView] = useState({ top: 0, height: 800, width: 1000 });
  const scroller = useRef<HTMLDivElement>(null);
  const generation = useRef(0);
  const inflight = useRef(false);

  const fetchPage = useCallback(
    async (after: number | null, limit: number) => {
      const gen = generation.current;
      inflight.current = true;
      setLoading(true);
      try {
        // The count of a first page goes as its own request, in parallel: the cells need not wait for it.
        if (after === null)
          get<Page>(`${P(project)}/assets${qs({ q, limit: 1, count: true })}`).then(
            (c) => { if (gen === generation.current) setTotal(c.total ?? null); },
            () => undefined, // the page's own request reports the error
          );
        const page = await get<Page>(`${P(project)}/assets${qs({ q, limit, after, shapes: true })}`);
        if (gen !== generation.current) return; // a newer query took over
        setItems((prev) => (after === null ? page.items : prev.concat(page.items)));
        setNext(page.next_after);
        setError(null);
      } catch (e) {
        if (gen !== generation.current) return;
        if (e instanceof ApiError) setError(e);
        else setError(new ApiError(0, { detail: String(e) }));
        setItems([]);
        setTotal(null);
        setNext(null);
      } finally {
        if (gen === generation.current) {
          inflight.current = false;
          setLoading(false);
        }
      }
    },
    [project, q],
  );

  useEffect(() => {
    generation.current++;
    inflight.current = false;
    setItems([]);
    setNext(null);
    setTotal(null);
    setSelected(new Set());
    setAnchor(null);
    setNotice(null);
    scroller.current?.scrollTo(0, 0);
    // the first page is what fills the view (and a row more), so it comes back fast
    const el = scroller.current;
    const fits = el ? Math.max(1, Math.floor(el.clientWidth / CELL)) * (Math.ceil(el.clientHeight / ROW) + 1) : FIRST_PAGE;
    void fetchPage(null, Math.min(FIRST_PAGE, Math.max(24, fits)));
  }, [fetchPage]);

  useEffect(() => {
    if (items.length && !firstCellsMarked) {
      firstCellsMarked = true;
      requestAnimationFrame(() => performance.mark("dsgen:first-cells"));
    }
  }, [items.length]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight, width: el.clientWidth });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    el.addEventListener("scroll", measure, { passive: true });
    return () => {
      ro.disconnect();
      el.removeEventListener("scroll", measure);
    };
  }, []);

  const cols = Math.max(1, Math.floor(view.width / CELL));
  const known = total ?? items.length + (next !== null ? cols : 0);
  const rows = Math.ceil(known / cols);
  const firstRow = Math.max(0, Math.floor(view.top / ROW) - OVERSCAN);
  const lastRow = Math.min(rows - 1, Math.ceil((view.top + view.height) / ROW) + OVERSCAN);
  const lastIndex = (lastRow + 1) * cols;

  // keep loading while the view reaches past what is loaded (a fast scroll fetches page after page)
  useEffect(() => {
    if (next === null || inflight.current || error) return;
    if (lastIndex + cols * 4 >= items.length) void fetchPage(next, PAGE);
  }, [lastIndex, items.length, next, cols, fetchPage, error, loading]);

  const click = (index: number, id: number, shift: boolean) => {
    setSelected((prev) => {
      const s = new Set(prev);
      if (shift && anchor !== null) {
        const [a, b] = anchor < index ? [anchor, index] : [index, anchor];
        for (let i = a; i <= b; i++) if (items[i]) s.add(items[i].id);
      } else if (s.has(id)) s.delete(id);
      else s.add(id);
      return s;
    });
    if (!shift) setAnchor(index);
  };

  const bulk = async (action: "add" | "remove") => {
    const tags = tagText.split(/[\s,]+/).filter(Boolean);
    if (!tags.length || !selected.size) return;
    try {
      const r = await post<{ changed: number }>(`${P(project)}/tags`, { ids: [...selected], tags, action, level: "image" });
      setNotice(`${action === "add" ? "tagged" : "untagged"} ${selected.size} images with ${tags.join(", ")} (${r.changed} changed)`);
    } catch (e) {
      setNotice(`failed: ${(e as Error).message}`);
    }
  };

  const cells = useMemo(() => {
    const out = [];
    for (let r = firstRow; r <= lastRow; r++)
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        if (i >= known) break;
        const it = items[i];
        const style = { top: r * ROW, left: c * CELL, width: CELL - 12, height: ROW - 12 };
        out.push(
          it ? (
            <div key={it.id} className={`cell${selected.has(it.id) ? " selected" : ""}`} style={style}
              data-id={it.id} data-index={i} aria-selected={selected.has(it.id)}
              onClick={(e) => click(i, it.id, e.shiftKey)}
              onDoubleClick={() => navigate(`/p/${encodeURIComponent(project)}/assets/${it.id}`)}>
              <Thumb item={it} project={project} />
              <div className="caption">
                <Link to={`/p/${encodeURIComponent(project)}/assets/${it.id}`} onClick={(e) => e.stopPropagation()} title={it.file_name}>
                  {it.file_name.split("/").pop()}
                </Link>
                <span className="muted">{it.objects}</span>
              </div>
            </div>
          ) : (
            <div key={`ph${i}`} className="cell placeholder" style={style} />
          ),
        );
      }
    return out;
    // click depends on anchor and items, which the other deps cover
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [firstRow, lastRow, cols, items, known, selected, anchor, project]);

  const run = (text: string) => navigate(`/p/${encodeURIComponent(project)}/gallery${qs({ q: text })}`);

  return (
    <div className="gallery">
      <QueryBox value={q} onRun={run} error={error} />
      <div className="toolbar">
        <span className="total" data-total={total ?? ""}>
          {total === null ? (loading ? "searching…" : "") : `${total.toLocaleString()} image${total === 1 ? "" : "s"}`}
        </span>
        <button type="button" onClick={() => setSelected(new Set(items.map((i) => i.id)))} disabled={!items.length}>
          Select all on page ({items.length.toLocaleString()})
        </button>
        {selected.size > 0 && (
          <span className="bulk">
            <b data-selected-count={selected.size}>{selected.size} selected</b>
            <input name="bulk-tags" placeholder="tag(s)" value={tagText} onChange={(e) => setTagText(e.target.value)} />
            <button type="button" onClick={() => void bulk("add")}>Add tag</button>
            <button type="button" onClick={() => void bulk("remove")}>Remove tag</button>
            <button type="button" onClick={() => setSelected(new Set())}>Clear</button>
          </span>
        )}
        {notice && <span className="notice" role="status">{notice}</span>}
      </div>
      <div className="scroller" ref={scroller}>
        <div className="canvas" style={{ height: rows * ROW, width: cols * CELL }}>{cells}</div>
      </div>
    </div>
  );
}
