alert("alert.js got called");
