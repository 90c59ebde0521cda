// Exports of the session on show: the server's participation CSV (fetched with the bearer
// token, then offered as a Blob link) and the participation JSON the page shows.
import { byId, show } from "./dom.js";

let objectUrl = null;

/** Offer `blob` as `filename`: the link under the buttons, clicked once for the user. */
export function offerDownload(blob, filename) {
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(blob);
  const link = byId("download-link");
  link.href = objectUrl;
  link.download = filename;
  link.textContent = `Save ${filename}`;
  link.dataset.filename = filename;
  show(link);
  link.click();
}

/** Forget the last download (another session is on show). */
export function clearDownload() {
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = null;
  const link = byId("download-link");
  link.removeAttribute("href");
  link.removeAttribute("download");
  link.textContent = "";
  delete link.dataset.filename;
  show(link, false);
}

export async function exportCsv(dashboardApi, classId, sessionId) {
  const { blob, filename } = await dashboardApi.participationCsv(classId, sessionId);
  offerDownload(blob, filename);
}

export function exportJson(report) {
  const text = `${JSON.stringify(report, null, 2)}\n`;
  offerDownload(new Blob([text], { type: "application/json" }),
                `participation-${report.classId}-${report.sessionId}.json`);
}
