"""The course's Streamlit frame, shared by every page (app.py re-exports what pages use):

    resources   data, MNIST, shipped checkpoints, the exact mixture: loaded once per server
    my_models   "use my model": a session's own trained models, held through a dropped connection
    sidebar     the shared sidebar and its URL round trip; frame() for pages
    widgets     url_int, url_float, url_choice, url_bool, url_multi: widgets whose value is in the URL
    present     presenter mode, chart / explain / equation / show_source, download, the copy link

Everything here imports streamlit; the logic it calls lives in lessons/ and toy_models/.
"""
