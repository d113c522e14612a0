// The query box: the DSL as typed, its terms as removable chips, and an API error drawn under the
// column it names (the input and the caret line share one monospace font, so they line up).
import { useEffect, useState } from "react";
import type { ApiError } from "../api";

/** Terms as the query language splits them: whitespace outside quotes and parentheses. */
export function terms(q: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote = false;
  let depth = 0;
  for (const c of q) {
    if (c === '"') quote = !quote;
    if (!quote && c === "(") depth++;
    if (!quote && c === ")") depth = Math.max(0, depth - 1);
    if (!quote && depth === 0 && /\s/.test(c)) {
      if (cur) out.push(cur);
      cur = "";
    } else cur += c;
  }
  if (cur) out.push(cur);
  return out;
}

export function QueryBox({ value, onRun, error }: { value: string; onRun: (q: string) => void; error: ApiError | null }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  const column = error?.problem.column;
  const all = terms(value);
  const chips = all.map((t, i) => [t, i] as const).filter(([t]) => t.toUpperCase() !== "OR");
  // removing a term takes an OR that joined it along, so the rest still parses
  const without = (i: number) =>
    all.filter((_, j) => j !== i && !(all[j].toUpperCase() === "OR" && (j === i - 1 || (j === i + 1 && i === 0)))).join(" ");
  return (
    <div className="querybox">
      <form onSubmit={(e) => { e.preventDefault(); onRun(text.trim()); }}>
        <input
          name="q"
          className={`mono${error ? " invalid" : ""}`}
          value={text}
          placeholder="tag:car color:red width>1024"
          spellCheck={false}
          onChange={(e) => setText(e.target.value)}
          aria-invalid={!!error}
        />
        <button type="submit">Search</button>
      </form>
      {error && (
        <div className="query-error" role="alert" data-column={column ?? ""}>
          {typeof column === "number" && (
            <pre className="mono caret">{(error.problem.query ?? value) + "\n" + " ".repeat(Math.max(0, column - 1)) + "^"}</pre>
          )}
          <span>{error.problem.detail ?? error.message}{typeof column === "number" ? ` (column ${column})` : ""}</span>
        </div>
      )}
      {chips.length > 0 && (
        <div className="chips">
          {chips.map(([t, i]) => (
            <span className="chip" key={`${t}-${i}`} data-term={t}>
              {t}
              <button type="button" title={`remove ${t}`} aria-label={`remove ${t}`}
                onClick={() => onRun(without(i))}>×</button>
            </span>
          ))}
        </div>
      )}
    </div>
  );
}
