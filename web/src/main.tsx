import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { get, isLoggedIn, logout, onLogout, qs } from "./api";
import { Cvat } from "./pages/Cvat";
import { AssetDetail } from "./pages/Detail";
import { Gallery } from "./pages/Gallery";
import { InsightsPage } from "./pages/Insights";
import { Login } from "./pages/Login";
import { Models } from "./pages/Models";
import { Projects } from "./pages/Projects";
import { Versions } from "./pages/Versions";
import { Link, navigate, useLocation } from "./router";
import "./styles.css";

const TABS = [
  ["gallery", "Gallery"],
  ["insights", "Insights"],
  ["versions", "Versions"],
  ["models", "Models"],
  ["cvat", "CVAT"],
] as const;

function App() {
  const { path, params } = useLocation();
  const [me, setMe] = useState<{ email: string } | null>(null);
  const authed = isLoggedIn();
  useEffect(() => onLogout(() => navigate(`/login${qs({ next: location.pathname + location.search })}`, true)), []);
  useEffect(() => {
    if (!authed && path !== "/login") navigate(`/login${qs({ next: path === "/" ? null : path + (params.size ? `?${params}` : "") })}`, true);
  }, [authed, path, params]);
  useEffect(() => {
    if (authed && path !== "/login" && !me) get<{ email: string }>("/api/me").then(setMe, () => setMe(null));
  }, [authed, path, me]);

  if (path === "/login" || !authed) return <Login />;
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const project = parts[0] === "p" ? parts[1] : null;
  const tab = project ? parts[2] ?? "gallery" : null;
  const q = params.get("q") ?? "";
  let page;
  if (!project) page = <Projects />;
  else if (tab === "assets" && parts[3]) page = <AssetDetail key={parts[3]} project={project} id={Number(parts[3])} />;
  else if (tab === "insights") page = <InsightsPage project={project} q={q} />;
  else if (tab === "versions") page = <Versions project={project} tag={parts[3] ?? null} q={q} />;
  else if (tab === "models") page = <Models project={project} refName={parts[3] ?? null} />;
  else if (tab === "cvat") page = <Cvat project={project} q={q} />;
  else page = <Gallery project={project} q={q} />;
  return (
    <div className="app">
      <header>
        <Link to="/" className="brand">dsgen</Link>
        {project && <span className="project">{project}</span>}
        {project && (
          <nav>
            {TABS.map(([t, label]) => (
              <Link key={t} to={`/p/${encodeURIComponent(project)}/${t}${qs({ q: q || null })}`} className={tab === t ? "active" : undefined}>{label}</Link>
            ))}
          </nav>
        )}
        <span className="spacer" />
        {me && <span className="muted">{me.email}</span>}
        <button type="button" onClick={() => void logout()}>Log out</button>
      </header>
      <main>{page}</main>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
