// mailstack console: follow live protocol transcripts (server-sent events).
// Every text is put in with textContent: a client's line is never markup.
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box || !window.EventSource) { return; }
  var single = box.dataset.single === "1";
  var state = document.getElementById("state");
  var source = new EventSource(box.dataset.events);

  function addLine(sessionID, line) {
    var row = document.createElement("div");
    row.className = "line kind-" + (line.kind === "#" ? "note" : line.kind);
    row.dataset.seq = line.seq;
    if (!single) {
      var tag = document.createElement("span");
      tag.className = "session";
      tag.textContent = "#" + sessionID;
      row.appendChild(tag);
      row.appendChild(document.createTextNode(" "));
    }
    var marker = document.createElement("span");
    marker.className = "marker";
    marker.textContent = line.kind + (line.kind === "#" ? "" : ":");
    row.appendChild(marker);
    row.appendChild(document.createTextNode(" " + line.text));
    box.appendChild(row);
    box.scrollTop = box.scrollHeight;
  }

  source.addEventListener("shown", function (event) {
    var data = JSON.parse(event.data);
    var s = data.session;
    if (!single) {
      var head = document.createElement("div");
      head.className = "line session-start";
      head.textContent = "#" + s.id + " " + s.protocol + " session from " + s.client +
        (s.users.length ? " (" + s.users.join(", ") + ")" : "");
      box.appendChild(head);
    }
    data.lines.forEach(function (line) { addLine(s.id, line); });
  });
  source.addEventListener("line", function (event) {
    var line = JSON.parse(event.data);
    addLine(line.session, line);
  });
  source.addEventListener("ended", function (event) {
    var data = JSON.parse(event.data);
    if (single) {
      source.close();
      if (state) { state.textContent = "Ended: " + data.reason; }
    }
  });
}());
